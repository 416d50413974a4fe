"""Control endpoints under /api/v1: parse, check role and read-only mode, call the service.

Each view notes what it did for the audit trail (audit/recorder.py); the audit hook writes
the record after the response is made, so refused and failed requests are recorded too. A bulk revoke that
acts (not a dry run) runs in a background thread and reports progress on its own audit
record, which the page polls at /api/v1/audit/<id>.
"""
from __future__ import annotations

import threading

from flask import Blueprint, current_app, jsonify, render_template
from werkzeug.datastructures import MultiDict

from lookout.dashboard.audit.recorder import (
    audit_service,
    audited,
    note,
    record_request,
    skip,
    write_now,
)
from lookout.dashboard.control.args import WORKER_ARGUMENTS, parse_signal
from lookout.dashboard.control.bulk import BulkRevoke
from lookout.dashboard.control.retry import TaskRetrier
from lookout.dashboard.control.service import ControlService
from lookout.dashboard.history.query import TASK_LIST_PARAMS, parse_task_query
from lookout.dashboard.web.errors import ApiError, bad_parameter
from lookout.dashboard.web.params import json_body, json_flag, parse_window, reject_unknown
from lookout.dashboard.web.roles import identity, require_role

bp = Blueprint("control", __name__, url_prefix="/api/v1")
bp.after_request(record_request)
pages_bp = Blueprint("control_pages", __name__)
BULK_FILTERS = TASK_LIST_PARAMS - {"sort", "limit", "cursor"}


def control() -> ControlService:
    return current_app.extensions["lookout.control"]


@bp.before_request
def operators_only():
    """Role first, then read-only mode: both refuse before anything is parsed or sent."""
    require_role("operator", control=True)


def _body(*allowed: str) -> dict:
    """The JSON body (empty allowed) with only the keys `allowed`: a typo such as
    `terminat` must be a 400, not a plain revoke that leaves a running task alone."""
    body = json_body(optional=True)
    reject_unknown(body, frozenset(allowed))
    return body


def _done(action: str, result: dict):
    note(action=action, targets=result["targets"], parameters=result["parameters"],
         replies=result["replies"])
    # What the workers answered, not just that the request was fine: a worker saying
    # "Can't shrink pool" makes the record partial (some refused) or failed (all did).
    answered = [r.get("ok") for r in result["replies"] or []]
    if answered and not all(answered):
        refused = answered.count(False) + answered.count(None)
        note(outcome="partial" if any(answered) else "failed",
             message=f"{refused} of {len(answered)} workers did not do it")
    return jsonify(result)


def _started(action: str, targets: list[str], parameters: dict) -> None:
    """Say what is being attempted, so a 400/404/503 record still names it."""
    note(action=action, targets=targets, parameters=parameters)


@bp.post("/tasks/<path:task_id>/revoke")
@audited("task.revoke")
def task_revoke(task_id: str):
    body = _body("terminate", "signal")
    params = {"terminate": json_flag(body, "terminate", False), "signal": body.get("signal")}
    _started("task.revoke", [task_id], params)
    return _done("task.revoke", control().revoke(task_id, **params))


def _filters(body: dict) -> dict:
    """The bulk filters object: keys among BULK_FILTERS, values as the tasks list's query
    string takes them (text, a number, or a list of those for `state`). Another type
    (`{"state": 1}` as an object, null) reached the query parser and was a 500 (a
    hostile-input trial)."""
    filters = body.get("filters") or {}
    if not isinstance(filters, dict) or set(filters) - BULK_FILTERS:
        raise bad_parameter("filters", f"an object with keys among: {', '.join(sorted(BULK_FILTERS))}")
    for key, value in filters.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise bad_parameter(f"filters.{key}", "text or a number (a list for state)")
    return filters


def _failure_group(body: dict) -> tuple[str, float] | None:
    """A bulk retry's failure group: (fingerprint, window in seconds), or None. With it,
    `filters` must be empty: a group is what it selects (a trial's filters by task name
    retried a payment task's unrelated failures with the group it meant)."""
    group = body.get("failure_group")
    if group is None:
        return None
    if (not isinstance(group, dict) or set(group) - {"fingerprint", "window"}
            or not isinstance(group.get("fingerprint"), str)
            or not 0 < len(group["fingerprint"]) <= 64):
        raise bad_parameter("failure_group", "an object {fingerprint, window} as "
                            "/api/v1/failures gives them")
    if body.get("filters"):
        raise bad_parameter("filters", "not with failure_group: the group is the selection")
    window = group.get("window") or "24h"
    if not isinstance(window, str):
        raise bad_parameter("failure_group.window", "a window such as 1h, 24h or 7d")
    return group["fingerprint"], parse_window(window, "24h", parameter="failure_group.window")


def _filters_query(filters: dict):
    """The filters as the tasks list would read them from its query string."""
    return parse_task_query(MultiDict([(k, str(v)) for k, values in filters.items()
                                       for v in (values if isinstance(values, list)
                                                 else [values])]))


@bp.post("/tasks/revoke")
@audited("tasks.revoke")
def tasks_revoke():
    body = _body("filters", "dry_run", "terminate", "signal", "expected_count", "wait")
    filters = _filters(body)
    dry_run = json_flag(body, "dry_run", True)  # acting must be asked for explicitly
    terminate = json_flag(body, "terminate", False)
    wait = json_flag(body, "wait", False)
    signal = body.get("signal")
    params = {"filters": filters, "dry_run": dry_run, "terminate": terminate, "signal": signal}
    _started("tasks.revoke", [], params)
    if terminate:
        params["signal"] = signal = parse_signal(signal)
    matches = control().bulk_matches(_filters_query(filters).filters)
    if dry_run:
        skip()  # changes nothing, like a GET
        return jsonify(dry_run=True, **{k: v for k, v in matches.items() if k != "ids"})
    if matches["over_cap"]:
        raise bad_parameter("filters", f"{matches['count']} tasks match; at most "
                            f"{matches['cap']} per bulk revoke: narrow the filters")
    ids = matches["ids"]
    expected = _expected_count(body)
    if expected is not None and expected != len(ids):
        # The matching set changed since the dry run the user confirmed: make them look again.
        raise ApiError(409, f"{len(ids)} tasks match now, not the {expected} of the dry run; "
                       "run the dry run again")
    params["count"] = len(ids)
    if not ids:
        note(action="tasks.revoke", targets=[], parameters=params)
        return jsonify(dry_run=False, count=0, replies=[])
    return _run_bulk(ids, terminate, signal, params, wait=wait)


def _run_bulk(ids, terminate, signal, params, wait: bool):
    audit = audit_service()
    params["progress"] = {"done": 0, "total": len(ids)}
    record_id = write_now(202, outcome="running", action="tasks.revoke", targets=ids,
                         parameters=params, replies=[])
    job = BulkRevoke(control(), audit, record_id, ids, terminate, signal, params)
    if wait:
        job.run()
        return jsonify(audit.get(record_id))
    threading.Thread(target=job.run, name=f"lookout-bulk-revoke-{record_id}",
                     daemon=True).start()
    return jsonify(dry_run=False, count=len(ids), audit_id=record_id,
                   status_url=f"/api/v1/audit/{record_id}"), 202


def retrier() -> TaskRetrier:
    return current_app.extensions["lookout.retry"]


def _actor() -> str | None:
    ident = identity()
    return ident.name if ident else None


@bp.post("/tasks/<path:task_id>/retry")
@audited("task.retry")
def task_retry(task_id: str):
    _started("task.retry", [task_id], {})
    result = retrier().retry(task_id, _actor())
    note(parameters={"name": result["name"], "args": result["args"],
                     "kwargs": result["kwargs"]}, replies={"task_id": result["task_id"]})
    return jsonify(result)


@bp.post("/tasks/retry")
@audited("tasks.retry")
def tasks_retry():
    """Bulk retry by filters (failed tasks unless a state is given), or of one failure
    group (`failure_group`: {fingerprint, window} as the Failures page has it): dry run
    first."""
    body = _body("filters", "failure_group", "dry_run", "expected_count")
    filters = _filters(body)
    group = _failure_group(body)
    dry_run = json_flag(body, "dry_run", True)
    params = {"filters": filters, "dry_run": dry_run}
    if group is not None:
        params["failure_group"] = body["failure_group"]
    _started("tasks.retry", [], params)
    if group is not None:
        key, window = group
        matches = retrier().matches_ids(current_app.extensions["lookout.failures"].task_ids(
            key, window, retrier().bulk_cap + 1))
    else:
        matches = retrier().matches(_filters_query(filters).filters)
    plans = matches.pop("plans")
    if dry_run:
        skip()
        return jsonify(dry_run=True, **matches)
    if matches["over_cap"]:
        raise bad_parameter("filters", f"{matches['count']} tasks match; at most "
                            f"{matches['cap']} per bulk retry: narrow the filters")
    expected = _expected_count(body)
    if expected is not None and expected != matches["retriable"]:
        raise ApiError(409, f"{matches['retriable']} tasks can be retried now, not the "
                            f"{expected} of the dry run; run the dry run again")
    sent = retrier().retry_many(plans, _actor())
    note(targets=[p["uuid"] for p in plans if not p["refused"]],
         parameters={**params, "count": len(sent), "refused": matches["refused_count"]},
         replies=[{"retry_of": r["retry_of"], "task_id": r["task_id"]} for r in sent])
    return jsonify(dry_run=False, count=len(sent), sent=sent, refused=matches["refused"],
                   refused_count=matches["refused_count"], warnings=matches["warnings"])


def _expected_count(body: dict) -> int | None:
    value = body.get("expected_count")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad_parameter("expected_count", "a whole number (the dry run's count)")
    return value


@bp.post("/rate-limits")
@audited("rate_limit")
def rate_limit():
    body = _body("task_name", "rate_limit", "destination")
    _started("rate_limit", [str(body.get("task_name"))], body)
    return _done("rate_limit", control().rate_limit(
        body.get("task_name"), body.get("rate_limit"), body.get("destination")))


@bp.post("/time-limits")
@audited("time_limit")
def time_limit():
    body = _body("task_name", "soft", "hard", "destination")
    _started("time_limit", [str(body.get("task_name"))], body)
    return _done("time_limit", control().time_limit(
        body.get("task_name"), body.get("soft"), body.get("hard"), body.get("destination")))


WORKER_ROUTES = {
    "pool/grow": "pool_grow",
    "pool/shrink": "pool_shrink",
    "pool/autoscale": "autoscale",
    "pool/restart": "pool_restart",
    "consumers/add": "add_consumer",
    "consumers/cancel": "cancel_consumer",
    "shutdown": "shutdown",
}


def _worker_and_command(target: str) -> tuple[str, str]:
    """Split "<hostname>/<command>": a hostname may hold "/" (celery -n takes any name),
    so the command is found by its known endings; else it is the last segment."""
    for command in WORKER_ROUTES:
        if target.endswith("/" + command) and len(target) > len(command) + 1:
            return target[:-len(command) - 1], command
    hostname, _, command = target.rpartition("/")
    return hostname, command


@bp.post("/workers/<path:target>")
@audited(lambda args: "worker." + WORKER_ROUTES.get(
    _worker_and_command(args.get("target", ""))[1], "unknown"),
    targets=lambda args: [_worker_and_command(args.get("target", ""))[0]])
def worker_command(target: str):
    hostname, command = _worker_and_command(target)
    if not hostname or command not in WORKER_ROUTES:
        raise ApiError(404, f"unknown worker command {command[:40]!r} "
                       f"(one of: {', '.join(WORKER_ROUTES)})")
    name = WORKER_ROUTES[command]
    body = _body(*WORKER_ARGUMENTS[name])
    _started(f"worker.{name}", [hostname], body)
    return _done(f"worker.{name}", control().worker_command(hostname, name, body))


@pages_bp.get("/controls")
def controls_page():
    """Bulk revoke and per-task-name limits; per-task and per-worker controls live on
    the task and worker pages (templates/control/_task_controls.html, _worker_controls.html)."""
    require_role("operator")
    return render_template("control/controls.html", page="controls")
