"""The history API under /api/v1, and /healthz: parse, ask the HistoryService, serialise.

Errors are JSON {"error": {"status", "message", "parameter"?}}: 400 for any bad or unknown
query parameter (naming it), 404 for unknown task ids and worker hostnames. Parameter
and response shapes are described in docs/api.md.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from dashboard.query import parse_task_query, parse_window, reject_unknown

bp = Blueprint("api", __name__, url_prefix="/api/v1")
health_bp = Blueprint("health", __name__)


def _history():
    return current_app.extensions["lookout.history"]


@bp.get("/tasks")
def list_tasks():
    page = _history().list_tasks(parse_task_query(request.args))
    return jsonify(items=page.items, total=page.total, next_cursor=page.next_cursor)


@bp.get("/tasks/<task_id>")
def get_task(task_id: str):
    reject_unknown(request.args, frozenset())
    return jsonify(_history().get_task(task_id))


@bp.get("/workers")
def list_workers():
    reject_unknown(request.args, frozenset())
    return jsonify(items=_history().list_workers())


@bp.get("/workers/<hostname>")
def get_worker(hostname: str):
    reject_unknown(request.args, frozenset())
    return jsonify(_history().get_worker(hostname))


@bp.get("/stats")
def stats():
    reject_unknown(request.args, frozenset({"window"}))
    return jsonify(_history().rollups.stats(parse_window(request.args.get("window"))))


@health_bp.get("/healthz")
def healthz():
    """200 when healthy, 503 otherwise (for load balancers and orchestrators); always JSON."""
    report = _history().health.check()
    response = jsonify(report)
    response.status_code = 200 if report["healthy"] else 503
    response.headers["Cache-Control"] = "no-store"
    return response
