"""GET /metrics, in the Prometheus text format, under the LOOKOUT_METRICS_ACCESS policy.

"loopback" (the default) lets a scraper on this machine in without credentials and asks
everyone else for a token (`Authorization: Bearer`, viewer role is enough) or a login; a
request relayed by a local proxy (X-Forwarded-For) is not treated as local. "open" lets
anyone in; "auth" always asks for credentials.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from lookout.dashboard.web.errors import ApiError
from lookout.dashboard.web.roles import identity

bp = Blueprint("metrics", __name__)
LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _local() -> bool:
    return request.remote_addr in LOOPBACK and "X-Forwarded-For" not in request.headers \
        and "Forwarded" not in request.headers


@bp.get("/metrics")
def metrics():
    access = current_app.config["LOOKOUT"].metrics_access
    allowed = access == "open" or identity() is not None or (access == "loopback" and _local())
    if not allowed:
        raise ApiError(401, "authentication required (LOOKOUT_METRICS_ACCESS="
                            f"{access}): send Authorization: Bearer <token>")
    body = current_app.extensions["lookout.metrics"].exposition()
    return Response(body, content_type=CONTENT_TYPE)
