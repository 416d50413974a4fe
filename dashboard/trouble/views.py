"""The Trouble page (lost and stuck tasks, with revoke and retry) and its API."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request

from lookout.dashboard.web.params import parse_limit, reject_unknown

bp = Blueprint("trouble", __name__)


@bp.get("/trouble")
def trouble_page():
    return render_template("trouble/trouble.html", page="trouble")


@bp.get("/api/v1/trouble")
def trouble():
    reject_unknown(request.args, frozenset({"limit"}))
    limit = parse_limit(request.args.get("limit"), default=200, maximum=1000)
    return jsonify(current_app.extensions["lookout.trouble"].overview(limit))


@bp.get("/api/v1/trouble/tasks/<path:task_id>")
def task_trouble(task_id: str):
    """Lost and stuck verdicts of one task (the task page shows them)."""
    task = current_app.extensions["lookout.history"].get_task(task_id)
    stuck = current_app.extensions["lookout.trouble"].for_task(task)
    return jsonify(uuid=task_id, lost=task["lost"], stuck=None if task["lost"] else stuck)
