"""/healthz: the whole pipeline, 200 when healthy, 503 otherwise (for monitoring and
alerts); /readyz: whether this web process can serve (for load balancers and probes).

Routing on /healthz would take the dashboard away exactly during an incident (a broker
or collector outage makes it 503), when on-call needs it most; /readyz only asks the
store, without which no page or API answer can be served."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from lookout.dashboard.health.service import HealthCheck
from lookout.dashboard.web.roles import identity

PUBLIC_FIELDS = ("status", "healthy", "time")

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Always JSON, never cached. Public (the guard lets it through), but anonymous
    callers such as load balancers get only the verdict: broker hosts, user names and
    error texts are for signed-in users and tokens."""
    check: HealthCheck = current_app.extensions["lookout.health"]
    report = check.check()
    if identity() is None:
        report = {name: report[name] for name in PUBLIC_FIELDS}
    else:  # this web process's sockets against its caps (live/limits.py)
        report["live"] = current_app.extensions["lookout.socket_limits"].snapshot()
    response = jsonify(report)
    response.status_code = 200 if report["healthy"] else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/readyz")
def readyz():
    """Public, no detail: 200 {"ready": true} while this process reaches its store."""
    check: HealthCheck = current_app.extensions["lookout.health"]
    ready = check.store_answers()
    response = jsonify(ready=ready, time=check.clock())
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response
