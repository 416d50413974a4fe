"""/healthz: 200 when healthy, 503 otherwise (for load balancers and orchestrators)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from lookout.dashboard.health.service import HealthCheck

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Always JSON, never cached; public (the guard lets it through)."""
    check: HealthCheck = current_app.extensions["lookout.health"]
    report = check.check()
    response = jsonify(report)
    response.status_code = 200 if report["healthy"] else 503
    response.headers["Cache-Control"] = "no-store"
    return response
