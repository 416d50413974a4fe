"""Schedules: the beat schedule of the app given with -A, in words, with next and last runs.

Beat keeps its own state (last run per entry) in a file Lookout cannot see, so "last run"
is the newest task in the history with the entry's task name, preferring one whose args
and kwargs match (several entries often share one task). "Next run" is Celery's own
estimate (`remaining_estimate`) from that last run, or from now when none is known.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, select

from lookout.core.celery_client import load_celery_app as import_app
from lookout.core.store.models import Task
from lookout.dashboard.schedules.describe import describe

LAST_RUN_COLUMNS = (Task.uuid, Task.state, Task.timestamp, Task.args, Task.kwargs,
                    Task.worker, Task.runtime, Task.exception)


def load_celery_app(settings) -> Any:
    """The Celery app bound to the settings (`-A proj`), else import settings.celery_app."""
    app = settings.extra.get("celery_app")
    if app is None and settings.celery_app:
        app = import_app(settings.celery_app)
    return app


def next_run(schedule, last_run_at: float | None) -> dict[str, Any]:
    """Celery's estimate of the next run; errors (e.g. solar without ephem) are reported."""
    try:
        now = schedule.now()
        last = (datetime.fromtimestamp(last_run_at, tz=timezone.utc)
                if last_run_at is not None else now)
        remaining = schedule.remaining_estimate(last)
    except Exception as exc:  # noqa: BLE001 - one odd entry must not hide the rest
        return {"next_run_at": None, "due": None, "error": f"{type(exc).__name__}: {exc}"}
    remaining = max(remaining, timedelta(0))
    return {"next_run_at": round((now + remaining).timestamp(), 3),
            "due": remaining == timedelta(0),
            "estimated_from": "last run in history" if last_run_at else "now"}


def _reprs(value: Any) -> set[str]:
    """How the events may have rendered these args: Celery's saferepr of list or tuple."""
    from celery.utils.saferepr import saferepr

    if value is None:
        return {"()", "[]", "{}", "None"}
    out = {saferepr(value)}
    if isinstance(value, (list, tuple)):
        out |= {saferepr(tuple(value)), saferepr(list(value))}
    return out


def last_run(engine: Engine, task: str, args: Any, kwargs: Any) -> dict[str, Any] | None:
    """Newest task of that name whose args/kwargs match, else newest of that name."""
    query = select(*LAST_RUN_COLUMNS).where(Task.name == task)
    newest = (Task.timestamp.desc(), Task.uuid.desc())
    with engine.connect() as conn:
        row = conn.execute(query.where(Task.args.in_(_reprs(args or ())),
                                       Task.kwargs.in_(_reprs(kwargs or {})))
                           .order_by(*newest).limit(1)).mappings().first()
        matched = "name+args"
        if row is None:
            row = conn.execute(query.order_by(*newest).limit(1)).mappings().first()
            matched = "name"
    return None if row is None else {**dict(row), "matched": matched}


def entries(celery_app, engine: Engine) -> list[dict[str, Any]]:
    """Every beat_schedule entry, described, with last and next run."""
    from celery.schedules import maybe_schedule

    tz = str(celery_app.conf.timezone or "UTC")
    items = []
    for name, entry in sorted((celery_app.conf.beat_schedule or {}).items()):
        item: dict[str, Any] = {
            "name": name, "task": entry.get("task"),
            "args": repr(entry.get("args", ()))[:500],
            "kwargs": repr(entry.get("kwargs", {}))[:500],
            "options": {k: str(v)[:200] for k, v in (entry.get("options") or {}).items()},
        }
        try:
            schedule = maybe_schedule(entry.get("schedule"), app=celery_app)
            item["schedule"] = describe(schedule, tz)
        except Exception as exc:  # noqa: BLE001
            item["schedule"] = {"kind": "invalid", "description": f"cannot read: {exc}"}
            items.append(item)
            continue
        seen = last_run(engine, item["task"], entry.get("args"), entry.get("kwargs"))
        item["last_run"] = seen
        item.update(next_run(schedule, seen["timestamp"] if seen else None))
        items.append(item)
    return items


