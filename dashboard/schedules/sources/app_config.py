"""The app's own `beat_schedule` (CELERY_BEAT_SCHEDULE in a Django project)."""
from __future__ import annotations

from lookout.dashboard.schedules import timing
from lookout.dashboard.schedules.sources import APP, BeatEntry, SourceReport


class AppConfigSource:
    """Entries of `app.conf.beat_schedule`, timed in the app's zone as beat times them."""
    name = APP

    def __init__(self, celery_app):
        self.celery_app = celery_app

    def read(self) -> SourceReport:
        from celery.schedules import maybe_schedule

        conf = self.celery_app.conf
        tz = str(conf.timezone or "UTC")
        report = SourceReport(APP, f"beat_schedule of app {self.celery_app.main}")
        for name, spec in sorted((conf.beat_schedule or {}).items()):
            entry = BeatEntry(APP, str(name), str(spec.get("task") or ""), None,
                              args=spec.get("args") or (), kwargs=spec.get("kwargs") or {},
                              options=dict(spec.get("options") or {}))
            try:
                entry.timing = timing.from_celery(
                    maybe_schedule(spec.get("schedule"), app=self.celery_app), tz)
            except Exception as exc:  # noqa: BLE001 - one odd entry must not hide the rest
                entry.error = f"cannot read its schedule: {type(exc).__name__}: {exc}"
            report.entries.append(entry)
        return report
