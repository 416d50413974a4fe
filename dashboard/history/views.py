"""Task history: the Overview, Tasks, Task, Workflow and Retries pages and their JSON API.

API errors are JSON {"error": {"status", "message", "parameter"?}}: 400 for any bad or
unknown query parameter (naming it), 404 for unknown task and workflow ids. Parameter and
response shapes are described in docs/api.md.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request

from lookout.dashboard.history.query import MAX_TEXT, parse_task_query
from lookout.dashboard.history.retries import retry_stats
from lookout.dashboard.history.service import HistoryService
from lookout.dashboard.history.throughput import recent_throughput
from lookout.dashboard.history.workflow import WORKFLOW_LIMIT
from lookout.dashboard.web.errors import bad_parameter
from lookout.dashboard.web.params import parse_limit, parse_window, reject_unknown

bp = Blueprint("history", __name__)


def _history() -> HistoryService:
    return current_app.extensions["lookout.history"]


@bp.get("/")
def overview():
    return render_template("history/overview.html", page="overview")


@bp.get("/tasks")
def tasks_page():
    return render_template("history/tasks.html", page="tasks")


@bp.get("/tasks/<path:task_id>")
def task_page(task_id: str):
    return render_template("history/task.html", page="task", task_id=task_id)


@bp.get("/workflows/<path:root_id>")
def workflow_page(root_id: str):
    return render_template("history/workflow.html", page="workflow", root_id=root_id)


@bp.get("/retries")
def retries_page():
    return render_template("history/retries.html", page="retries")


@bp.get("/api/v1/tasks")
def list_tasks():
    page = _history().list_tasks(parse_task_query(request.args))
    return jsonify(items=page.items, total=page.total, total_exact=page.total_exact,
                   next_cursor=page.next_cursor)


@bp.get("/api/v1/tasks/<path:task_id>")
def get_task(task_id: str):
    reject_unknown(request.args, frozenset())
    return jsonify(_history().get_task(task_id))


@bp.get("/api/v1/workflows/<path:root_id>")
def get_workflow(root_id: str):
    reject_unknown(request.args, frozenset({"limit"}))
    if len(root_id) > MAX_TEXT:
        raise bad_parameter("root_id", f"longer than {MAX_TEXT} characters")
    limit = parse_limit(request.args.get("limit"), WORKFLOW_LIMIT, WORKFLOW_LIMIT)
    return jsonify(_history().workflow(root_id, limit))


@bp.get("/api/v1/stats")
def stats():
    reject_unknown(request.args, frozenset({"window"}))
    return jsonify(_history().rollups.stats(parse_window(request.args.get("window"))))


@bp.get("/api/v1/retries")
def retries():
    reject_unknown(request.args, frozenset({"window"}))
    window = parse_window(request.args.get("window"))
    history = _history()
    return jsonify(retry_stats(history.engine, window, history.clock()))


@bp.get("/api/v1/throughput")
def throughput():
    """The last minute of live rates: the Overview chart's past (throughput.py)."""
    reject_unknown(request.args, frozenset())
    history = _history()
    return jsonify(recent_throughput(history.engine, history.clock()))
