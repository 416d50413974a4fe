"""The Failures page and /api/v1/failures[/<fingerprint>]."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request

from lookout.dashboard.web.errors import ApiError
from lookout.dashboard.web.params import parse_limit, parse_window, reject_unknown

bp = Blueprint("failures", __name__)
DEFAULT_WINDOW = "24h"


@bp.get("/failures")
def failures_page():
    return render_template("failures/failures.html", page="failures")


@bp.get("/api/v1/failures")
def failure_groups():
    reject_unknown(request.args, frozenset({"window", "limit"}))
    window = parse_window(request.args.get("window") or DEFAULT_WINDOW)
    limit = parse_limit(request.args.get("limit"), default=50, maximum=500)
    data = dict(current_app.extensions["lookout.failures"].groups(window))
    data["total_groups"] = len(data["groups"])
    data["groups"] = [{k: v for k, v in g.items() if k not in ("task_ids", "retried_ids")}
                      for g in data["groups"][:limit]]
    return jsonify(data)


@bp.get("/api/v1/failures/<key>")
def failure_group(key: str):
    reject_unknown(request.args, frozenset({"window"}))
    window = parse_window(request.args.get("window") or DEFAULT_WINDOW)
    group = current_app.extensions["lookout.failures"].group(key, window)
    if group is None:
        raise ApiError(404, f"no failure group {key[:40]!r} in that window")
    return jsonify(group)
