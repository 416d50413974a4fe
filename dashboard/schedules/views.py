"""The Schedules pages and /api/v1/schedules: list with health, entry detail, controls.

Entries are addressed as <source>/<name> (names may hold slashes: the rest of the path).
Controls need the operator role, are refused in read-only mode, and leave one audit
record each, like every control.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request

from lookout.dashboard.audit.recorder import audited, note, record_request
from lookout.dashboard.schedules.health import STATUSES
from lookout.dashboard.schedules.service import THRESHOLD_FIELDS, ScheduleService
from lookout.dashboard.schedules.sources import APP, DJANGO, REDBEAT
from lookout.dashboard.web.errors import bad_parameter
from lookout.dashboard.web.params import json_body, parse_limit, reject_unknown
from lookout.dashboard.web.roles import identity, require_role

bp = Blueprint("schedules", __name__)
bp.after_request(record_request)

HOW_TO = ("Start Lookout with your Celery app to see its beat schedule: "
          "celery -A proj lookout run, or lookout run -A proj "
          "(or set LOOKOUT_CELERY_APP=proj; for django-celery-beat without Django here, "
          "LOOKOUT_BEAT_DATABASE_URL).")
LIST_PARAMS = frozenset({"status", "source", "task", "q"})
SOURCES = (APP, DJANGO, REDBEAT)
MAX_THRESHOLD = 30 * 86400.0


def schedules() -> ScheduleService:
    return current_app.extensions["lookout.schedules"]


def _control(action: str, source: str, name: str) -> None:
    """Name the target first, so a refused request's audit record still says what."""
    note(action=action, targets=[f"{source}/{name}"])
    require_role("operator", control=True)


@bp.get("/schedules")
def schedules_page():
    return render_template("schedules/schedules.html", page="schedules", how_to=HOW_TO)


@bp.get("/schedules/<source>/<path:name>")
def entry_page(source: str, name: str):
    return render_template("schedules/entry.html", page="schedules", source=source,
                           name=name)


def _choices(parameter: str, allowed: tuple[str, ...]) -> set[str] | None:
    raw = request.args.get(parameter)
    if raw is None or raw == "":
        return None
    values = {v.strip() for v in raw.split(",") if v.strip()}
    unknown = values - set(allowed)
    if unknown:
        raise bad_parameter(parameter, f"unknown value {sorted(unknown)[0][:40]!r} "
                                       f"(allowed: {', '.join(allowed)})")
    return values


@bp.get("/api/v1/schedules")
def list_schedules():
    reject_unknown(request.args, LIST_PARAMS)
    statuses = _choices("status", STATUSES)
    sources = _choices("source", SOURCES)
    task = request.args.get("task") or None
    text = (request.args.get("q") or "").lower()
    data = schedules().overview()
    if not data["configured"]:
        data["message"] = HOW_TO
    data["items"] = [
        i for i in data["items"]
        if (statuses is None or i["health"]["status"] in statuses)
        and (sources is None or i["source"] in sources)
        and (task is None or i["task"] == task)
        and (not text or text in i["name"].lower() or text in i["task"].lower())]
    return jsonify(data)


@bp.get("/api/v1/schedules/<source>/<path:name>")
def get_entry(source: str, name: str):
    reject_unknown(request.args, frozenset({"limit"}))
    limit = parse_limit(request.args.get("limit"), default=50, maximum=500)
    return jsonify(schedules().detail(source, name, limit))


@bp.post("/api/v1/schedules/<source>/<path:name>/run")
@audited("schedule.run")
def run_now(source: str, name: str):
    _control("schedule.run", source, name)
    result = schedules().run_now(source, name)
    note(parameters={"task": result["task"], "args": result["args"],
                     "kwargs": result["kwargs"]}, replies={"task_id": result["task_id"]})
    return jsonify(result)


@bp.post("/api/v1/schedules/<source>/<path:name>/enable")
@audited("schedule.enable")
def enable(source: str, name: str):
    _control("schedule.enable", source, name)
    return jsonify(schedules().set_enabled(source, name, True))


@bp.post("/api/v1/schedules/<source>/<path:name>/disable")
@audited("schedule.disable")
def disable(source: str, name: str):
    _control("schedule.disable", source, name)
    return jsonify(schedules().set_enabled(source, name, False))


@bp.put("/api/v1/schedules/<source>/<path:name>/thresholds")
@audited("schedule.thresholds")
def set_thresholds(source: str, name: str):
    _control("schedule.thresholds", source, name)
    body = json_body()
    values = {}
    for key, value in body.items():
        if key not in THRESHOLD_FIELDS:
            raise bad_parameter(key, f"unknown field (allowed: {', '.join(THRESHOLD_FIELDS)})")
        values[key] = _threshold(key, value)
    note(parameters=values)
    ident = identity()
    return jsonify(schedules().set_thresholds(source, name, values,
                                              ident.name if ident else None))


def _threshold(key: str, value):
    """None resets to the default; failures is a count, the rest are seconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_parameter(key, "a number of seconds (or null for the default)")
    if key == "failures":
        if value != int(value) or not 1 <= value <= 100:
            raise bad_parameter(key, "a whole number from 1 to 100")
        return int(value)
    if not 1 <= value <= MAX_THRESHOLD:
        raise bad_parameter(key, f"seconds from 1 to {MAX_THRESHOLD:g}")
    return float(value)
