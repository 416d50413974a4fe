"""Where beat's schedule lives: one small source per scheduler, behind one interface.

A source reads its scheduler's entries into `BeatEntry` records; `sources_for` picks the
sources an app's beat uses. Beat's `beat_scheduler` names the scheduler, but Django
projects often pass it on beat's command line (`beat -S django`) instead, so a Django
project with django_celery_beat installed gets that source too. A scheduler none of the
sources can read is reported, never shown as an empty table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from lookout.dashboard.schedules.timing import Timing

APP = "app"
DJANGO = "django-celery-beat"
REDBEAT = "redbeat"
DEFAULT_SCHEDULERS = ("celery.beat:PersistentScheduler", "celery.beat.PersistentScheduler")


@dataclass
class BeatEntry:
    """One schedule entry as its source stores it, with Python args for matching runs."""
    source: str
    name: str
    task: str
    timing: Timing | None
    args: Any = ()
    kwargs: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    enabled: bool = True
    one_off: bool = False
    start_time: float | None = None
    expires_at: float | None = None
    # Beat's own record, where the source keeps one (django-celery-beat, RedBeat).
    last_run_at: float | None = None
    total_run_count: int | None = None
    changed_at: float | None = None
    description: str = ""
    error: str | None = None  # the entry could not be read fully
    can_toggle: bool = False
    note: str | None = None


@dataclass
class SourceReport:
    """What one source read, or why it could not."""
    name: str
    detail: str
    entries: list[BeatEntry] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "detail": self.detail, "entries": len(self.entries),
                "error": self.error}


class ScheduleSource(Protocol):
    name: str

    def read(self) -> SourceReport: ...


def scheduler_name(celery_app) -> str:
    """The app's beat_scheduler as text ('module:Class'), whatever form it was given in."""
    value = celery_app.conf.beat_scheduler if celery_app is not None else None
    if value is None:
        return DEFAULT_SCHEDULERS[0]
    if isinstance(value, str):
        return value
    return f"{value.__module__}:{value.__qualname__}"


def sources_for(celery_app, settings) -> tuple[list[ScheduleSource], list[str]]:
    """The sources to read for this app and settings, and warnings to show beside them."""
    from lookout.dashboard.schedules.sources import app_config, django_beat, redbeat

    sources: list[ScheduleSource] = []
    warnings: list[str] = []
    scheduler = scheduler_name(celery_app)
    if celery_app is not None:
        sources.append(app_config.AppConfigSource(celery_app))
    database = django_beat.database_for(celery_app, settings)
    if database is not None:
        sources.append(django_beat.DjangoBeatSource(database))
    elif "django_celery_beat" in scheduler:
        warnings.append(f"beat uses {scheduler}, but Lookout cannot reach its database: "
                        "set LOOKOUT_BEAT_DATABASE_URL, or run Lookout with -A and "
                        "DJANGO_SETTINGS_MODULE set")
    if "redbeat" in scheduler.lower():
        sources.append(redbeat.RedBeatSource(celery_app))
    known = (scheduler in DEFAULT_SCHEDULERS or "django_celery_beat" in scheduler
             or "redbeat" in scheduler.lower())
    if not known:
        warnings.append(f"beat uses {scheduler}, which Lookout cannot read: only the app's "
                        "beat_schedule is shown, and beat may run other entries")
    return sources, warnings
