"""celery-redbeat's schedule in Redis, decoded by RedBeat itself.

An app that uses RedBeat has it installed, so its own decoder reads each entry (schedule
kinds, last run and run count from its meta); Lookout only lists the keys. Entries in the
schedule sorted set are the enabled ones; a disabled entry keeps its hash but leaves the
set, so the keys under the prefix are scanned too.
"""
from __future__ import annotations

from lookout.dashboard.schedules import timing
from lookout.dashboard.schedules.sources import REDBEAT, BeatEntry, SourceReport

MAX_KEYS = 10_000


class RedBeatSource:
    name = REDBEAT

    def __init__(self, celery_app):
        self.celery_app = celery_app

    def read(self) -> SourceReport:
        try:
            from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf, get_redis
        except ImportError:
            return SourceReport(REDBEAT, "celery-redbeat", error=(
                "the app uses RedBeat, but celery-redbeat is not installed where Lookout runs"))
        try:
            conf = ensure_conf(self.celery_app)
            client = get_redis(self.celery_app)
            keys = set(client.zrange(conf.schedule_key, 0, MAX_KEYS))
            for key in client.scan_iter(match=conf.key_prefix + "*", count=500):
                if len(keys) >= MAX_KEYS:
                    break
                if key not in (conf.schedule_key, conf.statics_key) and \
                        client.type(key) in ("hash", b"hash"):
                    keys.add(key)
        except Exception as exc:  # noqa: BLE001 - Redis down or misconfigured: say so
            return SourceReport(REDBEAT, "celery-redbeat",
                                error=f"cannot read RedBeat's keys: {type(exc).__name__}: {exc}")
        report = SourceReport(REDBEAT, f"celery-redbeat keys {conf.key_prefix}*")
        tz = str(self.celery_app.conf.timezone or "UTC")
        for key in sorted(k.decode() if isinstance(k, bytes) else k for k in keys):
            try:
                found = RedBeatSchedulerEntry.from_key(key, app=self.celery_app)
            except KeyError:
                continue  # removed since it was listed
            except Exception as exc:  # noqa: BLE001 - one undecodable entry
                report.entries.append(BeatEntry(REDBEAT, key, "", None,
                                                error=f"cannot decode: {exc}"))
                continue
            entry = BeatEntry(REDBEAT, found.name, found.task, None, args=found.args or (),
                              kwargs=found.kwargs or {}, options=dict(found.options or {}),
                              enabled=bool(found.enabled),
                              total_run_count=found.total_run_count)
            if found.last_run_at is not None:
                entry.last_run_at = found.last_run_at.timestamp()
            try:
                entry.timing = timing.from_celery(found.schedule, tz)
            except Exception as exc:  # noqa: BLE001 - rrule and friends
                entry.error = f"cannot read its schedule: {exc}"
            report.entries.append(entry)
        return report
