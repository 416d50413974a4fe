"""Schedules: the beat schedule of the app given with -A, in words, with next and last runs.

Beat keeps its own state (last run per entry) in a file Lookout cannot see, so "last run"
is the newest task in the history with the entry's task name, preferring one whose args
and kwargs match (several entries often share one task). "Next run" is Celery's own
estimate (`remaining_estimate`) from that last run, or from now when none is known.
"""
from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request
from sqlalchemy import Engine, select

from collectors.store.models import Task
from dashboard.query import reject_unknown

bp = Blueprint("schedules", __name__)

DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTH_NAMES = calendar.month_name  # 1-based
UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
LAST_RUN_COLUMNS = (Task.uuid, Task.state, Task.timestamp, Task.args, Task.kwargs,
                    Task.worker, Task.runtime, Task.exception)


def load_celery_app(settings) -> Any:
    """The Celery app from `celery -A proj lookout`, else import settings.celery_app."""
    app = settings.extra.get("celery_app")
    if app is None and settings.celery_app:
        from celery.app.utils import find_app

        app = find_app(settings.celery_app)
    return app


def describe_interval(seconds: float) -> str:
    """'every 5 seconds', 'every hour', 'every 1 hour 30 minutes'."""
    if seconds <= 0:
        return "continuously"
    parts, rest = [], float(seconds)
    for unit, size in UNITS:
        count = rest // size if size > 1 else round(rest, 3)
        rest -= count * size
        if count:
            parts.append(f"{count:g} {unit}" + ("" if count == 1 else "s"))
    if len(parts) == 1 and parts[0].startswith("1 "):
        return "every " + parts[0][2:]
    return "every " + " ".join(parts)


def _field(values: set[int], low: int, high: int) -> str:
    """A cron field from Celery's expanded set: '*', '*/15', '1-5', '0,30'."""
    values = sorted(values)
    if values == list(range(low, high + 1)):
        return "*"
    if len(values) > 2 and values[0] == low:
        step = values[1] - values[0]
        if values == list(range(low, high + 1, step)):
            return f"*/{step}"
    runs: list[str] = []
    start = prev = values[0]
    for value in values[1:] + [None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = value
    return ",".join(runs)


def describe_crontab(cron, tz: str = "UTC") -> tuple[str, str]:
    """(words, cron expression) for a celery crontab, from its expanded value sets."""
    minute = _field(cron.minute, 0, 59)
    hour = _field(cron.hour, 0, 23)
    dom = _field(cron.day_of_month, 1, 31)
    month = _field(cron.month_of_year, 1, 12)
    dow = _field(cron.day_of_week, 0, 6)
    expression = f"{minute} {hour} {dom} {month} {dow}"
    if minute == "*" and hour == "*":
        words = "every minute"
    elif minute.startswith("*/") and hour == "*":
        words = f"every {minute[2:]} minutes"
    elif minute.isdigit() and hour == "*":
        words = f"at minute {minute} of every hour"
    elif minute.isdigit() and hour.startswith("*/"):
        words = f"at minute {minute} of every {hour[2:]} hours"
    elif minute.isdigit() and len(cron.hour) <= 6:
        words = "at " + ", ".join(f"{h:02d}:{int(minute):02d}" for h in sorted(cron.hour))
    else:
        words = f"at minute {minute} of hour {hour}"
    if dow != "*":
        days = sorted(cron.day_of_week)
        contiguous = len(days) > 2 and days == list(range(days[0], days[-1] + 1))
        words += (f" on {DAY_NAMES[days[0]]} to {DAY_NAMES[days[-1]]}" if contiguous
                  else " on " + ", ".join(DAY_NAMES[d] for d in days))
    if dom != "*":
        words += f" on day {dom} of the month"
    if month != "*":
        words += " in " + ", ".join(MONTH_NAMES[m] for m in sorted(cron.month_of_year))
    elif dow == "*" and dom == "*" and "every" not in words:
        words += " every day"
    return f"{words} ({tz})", expression


def describe_solar(event: str, lat: float, lon: float) -> str:
    """'at astronomical dawn (lat 40.7, lon -74.0)'."""
    first, _, second = event.partition("_")
    name = f"{second} {first}" if first in ("dawn", "dusk") and second else \
        event.replace("_", " ")
    return f"at {name} (lat {lat:g}, lon {lon:g})"


def describe(schedule, tz: str = "UTC") -> dict[str, Any]:
    """Kind, words and (for crontabs) the expression of any Celery schedule object."""
    from celery.schedules import crontab, schedule as interval, solar

    if isinstance(schedule, crontab):
        words, expression = describe_crontab(schedule, tz)
        return {"kind": "crontab", "description": words, "cron": expression}
    if isinstance(schedule, solar):
        return {"kind": "solar", "description": describe_solar(
            schedule.event, schedule.lat, schedule.lon)}
    if isinstance(schedule, interval):
        return {"kind": "interval", "seconds": schedule.run_every.total_seconds(),
                "description": describe_interval(schedule.run_every.total_seconds())}
    return {"kind": type(schedule).__name__, "description": str(schedule)[:200]}


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


HOW_TO = ("Start Lookout with your Celery app to see its beat schedule: "
          "celery -A proj lookout run, or lookout run -A proj "
          "(or set LOOKOUT_CELERY_APP=proj).")


@bp.get("/schedules")
def schedules_page():
    return render_template("schedules.html", page="schedules", how_to=HOW_TO)


@bp.get("/api/v1/schedules")
def list_schedules():
    reject_unknown(request.args, frozenset())
    settings = current_app.config["LOOKOUT"]
    try:
        # Imported once per web app: find_app touches sys.path, not something to redo
        # on every request thread.
        celery_app = current_app.extensions.get("lookout.celery_app")
        if celery_app is None:
            celery_app = load_celery_app(settings)
            current_app.extensions["lookout.celery_app"] = celery_app
    except Exception as exc:  # noqa: BLE001 - the user's module: any import error
        return jsonify(configured=True, app=settings.celery_app, items=[],
                       error=f"cannot load Celery app {settings.celery_app!r}: {exc}")
    if celery_app is None:
        return jsonify(configured=False, app=None, items=[], message=HOW_TO)
    return jsonify(configured=True, app=celery_app.main, items=entries(
        celery_app, current_app.extensions["lookout.engine"]))
