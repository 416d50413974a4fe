"""Control endpoints under /api/v1: parse, check role and read-only mode, call the service.

Each view records what it did in `g.audit`; the audit hook writes the record after the
response is made, so refused and failed requests are recorded too. A bulk revoke that
acts (not a dry run) runs in a background thread and reports progress on its own audit
record, which the page polls at /api/v1/audit/<id>.
"""
from __future__ import annotations

import threading

from flask import Blueprint, current_app, g, jsonify, render_template, request
from werkzeug.datastructures import MultiDict

from dashboard.audit import audited, record_request, service as audit_service
from dashboard.auth import require_role
from dashboard.control import ControlService
from dashboard.control_args import parse_signal
from dashboard.errors import ApiError, bad_parameter
from dashboard.query import TASK_LIST_PARAMS, parse_task_query

bp = Blueprint("control", __name__, url_prefix="/api/v1")
bp.after_request(record_request)
pages_bp = Blueprint("control_pages", __name__)
BULK_FILTERS = TASK_LIST_PARAMS - {"sort", "limit", "cursor"}


def control() -> ControlService:
    return current_app.extensions["lookout.control"]


@bp.before_request
def operators_only():
    """Role first, then read-only mode: both refuse before anything is parsed or sent."""
    require_role("operator")
    if current_app.config["LOOKOUT"].read_only:
        raise ApiError(403, "read-only mode: control actions are disabled")


def _body() -> dict:
    if not request.content_length and not request.is_json:
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise bad_parameter("body", "a JSON object is required")
    return body


def _done(action: str, result: dict):
    g.audit = {"action": action, "targets": result["targets"],
               "parameters": result["parameters"], "replies": result["replies"]}
    return jsonify(result)


def _started(action: str, targets: list[str], parameters: dict) -> None:
    """Say what is being attempted, so a 400/404/503 record still names it."""
    g.audit = {"action": action, "targets": targets, "parameters": parameters}


@bp.post("/tasks/<task_id>/revoke")
@audited("task.revoke")
def task_revoke(task_id: str):
    body = _body()
    params = {"terminate": bool(body.get("terminate")), "signal": body.get("signal")}
    _started("task.revoke", [task_id], params)
    return _done("task.revoke", control().revoke(task_id, **params))


@bp.post("/tasks/revoke")
@audited("tasks.revoke")
def tasks_revoke():
    body = _body()
    filters = body.get("filters") or {}
    if not isinstance(filters, dict) or set(filters) - BULK_FILTERS:
        raise bad_parameter("filters", f"an object with keys among: {', '.join(sorted(BULK_FILTERS))}")
    dry_run = body.get("dry_run", True) is not False  # acting must be asked for explicitly
    terminate = bool(body.get("terminate"))
    signal = body.get("signal")
    params = {"filters": filters, "dry_run": dry_run, "terminate": terminate, "signal": signal}
    _started("tasks.revoke", [], params)
    if terminate:
        params["signal"] = signal = parse_signal(signal)
    query = parse_task_query(MultiDict([(k, v) for k, values in filters.items()
                                        for v in (values if isinstance(values, list)
                                                  else [values])]))
    matches = control().bulk_matches(query.filters)
    if dry_run:
        g.audit_skip = True  # changes nothing, like a GET
        return jsonify(dry_run=True, **{k: v for k, v in matches.items() if k != "ids"})
    if matches["over_cap"]:
        raise bad_parameter("filters", f"{matches['count']} tasks match; at most "
                            f"{matches['cap']} per bulk revoke: narrow the filters")
    ids = matches["ids"]
    expected = body.get("expected_count")
    if expected is not None and expected != len(ids):
        # The matching set changed since the dry run the user confirmed: make them look again.
        raise ApiError(409, f"{len(ids)} tasks match now, not the {expected} of the dry run; "
                       "run the dry run again")
    params["count"] = len(ids)
    if not ids:
        g.audit = {"action": "tasks.revoke", "targets": [], "parameters": params}
        return jsonify(dry_run=False, count=0, replies=[])
    return _run_bulk(ids, terminate, signal, params, wait=bool(body.get("wait")))


def _run_bulk(ids, terminate, signal, params, wait: bool):
    from dashboard.auth import identity

    ident = identity()
    audit = audit_service(current_app)
    params["progress"] = {"done": 0, "total": len(ids)}
    record_id = audit.record(actor=ident.name, role=ident.role, remote_addr=request.remote_addr,
                             action="tasks.revoke", outcome="running", status=202,
                             targets=ids, parameters=params, replies=[])
    g.audit_done = True
    job = BulkRevoke(control(), audit, record_id, ids, terminate, signal, params)
    if wait:
        job.run()
        return jsonify(audit.get(record_id))
    threading.Thread(target=job.run, name=f"lookout-bulk-revoke-{record_id}",
                     daemon=True).start()
    return jsonify(dry_run=False, count=len(ids), audit_id=record_id,
                   status_url=f"/api/v1/audit/{record_id}"), 202


class BulkRevoke:
    """One bulk revoke: batches through the service, progress onto its audit record."""

    def __init__(self, service, audit, record_id, ids, terminate, signal, params):
        self.service, self.audit, self.record_id = service, audit, record_id
        self.ids, self.terminate, self.signal, self.params = ids, terminate, signal, params

    def _progress(self, done: int, replies: list[dict]) -> None:
        self.params["progress"] = {"done": done, "total": len(self.ids)}
        self.audit.update(self.record_id, parameters=self.params, replies=replies)

    def run(self) -> None:
        try:
            self.service.bulk_revoke(self.ids, self.terminate, self.signal, self._progress)
            self.audit.update(self.record_id, outcome="ok", status=200)
        except ApiError as exc:
            self.audit.update(self.record_id, outcome="error", status=exc.status,
                              message=exc.message)
        except Exception as exc:  # noqa: BLE001 - a job must always leave a final state
            self.audit.update(self.record_id, outcome="error", status=500,
                              message=f"{type(exc).__name__}: {exc}")


@bp.post("/rate-limits")
@audited("rate_limit")
def rate_limit():
    body = _body()
    _started("rate_limit", [str(body.get("task_name"))], body)
    return _done("rate_limit", control().rate_limit(
        body.get("task_name"), body.get("rate_limit"), body.get("destination")))


@bp.post("/time-limits")
@audited("time_limit")
def time_limit():
    body = _body()
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


@bp.post("/workers/<hostname>/<path:command>")
@audited(lambda args: "worker." + WORKER_ROUTES.get(args.get("command"), "unknown"))
def worker_command(hostname: str, command: str):
    if command not in WORKER_ROUTES:
        raise ApiError(404, f"unknown worker command {command[:40]!r} "
                       f"(one of: {', '.join(WORKER_ROUTES)})")
    name = WORKER_ROUTES[command]
    body = _body()
    _started(f"worker.{name}", [hostname], body)
    return _done(f"worker.{name}", control().worker_command(hostname, name, body))


@pages_bp.get("/controls")
def controls_page():
    """Bulk revoke and per-task-name limits; per-task and per-worker controls live on
    the task and worker pages (templates/_task_controls.html, _worker_controls.html)."""
    require_role("operator")
    return render_template("controls.html", page="controls")


def init_app(app) -> None:
    from dashboard.control import CeleryBroadcaster

    settings = app.config["LOOKOUT"]
    app.extensions["lookout.control"] = ControlService(
        app.extensions["lookout.engine"], CeleryBroadcaster(settings.broker_url),
        app.extensions["lookout.history"])
    app.register_blueprint(bp)
    app.register_blueprint(pages_bp)
