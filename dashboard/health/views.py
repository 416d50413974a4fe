"""/healthz: the whole pipeline, 200 when healthy, 503 otherwise (for monitoring and
alerts); /readyz: whether this web process can serve (for load balancers and probes);
/healthcheck: the same as /readyz, answered as Flower answers it.

Routing on /healthz would take the dashboard away exactly during an incident (a broker
or collector outage makes it 503), when on-call needs it most; /readyz only asks the
store, without which no page or API answer can be served.

Both answer in their own shape while the store is down, even when the caller's token or
session (kept in the store) cannot be checked: a monitor sending a token gets the
verdict, not the API's error."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from lookout.core.store.db import error_line
from lookout.dashboard.health.service import HealthCheck
from lookout.dashboard.web.errors import STORE_UNAVAILABLE
from lookout.dashboard.web.roles import identity

log = logging.getLogger(__name__)

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
    return _answer(report, report["healthy"])


@bp.get("/readyz")
def readyz():
    """Public, no detail: 200 {"ready": true} while this process reaches its store."""
    check: HealthCheck = current_app.extensions["lookout.health"]
    ready = check.store_answers()
    return _answer({"ready": ready, "time": check.clock()}, ready)


@bp.get("/healthcheck")
def healthcheck():
    """Flower's probe in Flower's words: the text "OK" while this process can serve.

    It was /healthz, whose 503 during a broker or collector outage made the Kubernetes
    liveness probes of Flower migrants restart every web pod (a migration trial): Flower
    answers OK whenever it runs. Here it asks what /readyz asks, the store."""
    check: HealthCheck = current_app.extensions["lookout.health"]
    return _text_answer(check.store_answers())


def _text_answer(ready: bool):
    response = current_app.response_class("OK" if ready else "store unavailable",
                                          status=200 if ready else 503,
                                          mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


def _store_down(exc: Exception):
    """The guard met the store down while checking who asks: the caller is unknown, so
    it gets what anyone gets, and the verdict is that of a store down."""
    log.warning("store unavailable for %s %s: %s", request.method, request.path,
                error_line(exc))
    check: HealthCheck = current_app.extensions["lookout.health"]
    if request.endpoint == "health.readyz":
        return _answer({"ready": False, "time": check.clock()}, False)
    if request.endpoint == "health.healthcheck":
        return _text_answer(False)
    report = check.store_down(exc)
    return _answer({name: report[name] for name in PUBLIC_FIELDS}, False)


for _error in STORE_UNAVAILABLE:
    bp.register_error_handler(_error, _store_down)


def _answer(body: dict, healthy: bool):
    response = jsonify(body)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response
