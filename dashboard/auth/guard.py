"""The request guard: establish who is asking on every request, refuse the anonymous.

People log in with a password and get a session cookie; scripts send
`Authorization: Bearer <token>`. Every request except the login page, static files,
/healthz, /readyz and /metrics (its own policy) needs one of the two, unless the app
runs with `--no-auth`, where everyone is an
admin (for local use only, announced by a log warning and a banner). Socket.IO
connections skip before_request, so they are checked by `socket_auth`, which the live
namespace calls on connect, after `handshake_identity` let the Engine.IO session open at
all. What each role may do is checked by web/roles.py.
"""
from __future__ import annotations

import logging

from flask import current_app, g, redirect, request, session, url_for

from lookout.core.config import redact_url
from lookout.dashboard.auth.accounts import AccountStore
from lookout.dashboard.web import security
from lookout.dashboard.web.errors import ApiError
from lookout.dashboard.web.roles import ROLES, Identity, identity

log = logging.getLogger("lookout.auth")
NOAUTH = Identity("local (no auth)", "admin", "noauth")
# /metrics applies its own policy (LOOKOUT_METRICS_ACCESS): see metrics/views.py.
PUBLIC_ENDPOINTS = frozenset({"static", "auth.login", "health.healthz", "health.readyz",
                              "health.healthcheck", "metrics.metrics"})
HANDSHAKE_IDENTITY = "lookout.handshake_identity"  # environ key: (token, Identity | None)


def accounts() -> AccountStore:
    return current_app.extensions["lookout.accounts"]


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


def _resolve(token: str | None) -> Identity | None:
    settings = current_app.config["LOOKOUT"]
    if token is not None:
        return accounts().token_identity(token)
    if not settings.auth:
        return NOAUTH
    user_id, epoch = session.get("uid"), session.get("epoch")
    if isinstance(user_id, int) and isinstance(epoch, int):
        return accounts().session_user(user_id, epoch)
    return None


def guard():
    """before_request: establish who is asking, then refuse what they may not do."""
    token = _bearer()
    g.identity = _resolve(token)
    if token is not None and g.identity is None:
        raise ApiError(401, "invalid or revoked API token")
    if g.identity is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if request.path.startswith("/api/") or request.method != "GET":
            raise ApiError(401, "authentication required")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    security.check_cross_site(bearer=token is not None)
    return None


def handshake_identity(app, environ) -> Identity | None:
    """Who opens an Engine.IO session, judged at its handshake, before any namespace:
    a logged-in session cookie, or a token in `Authorization: Bearer` or `?token=`.

    Refusing here (not only in the /live connect) means an anonymous client never holds
    a socket, on "/" or anywhere else. A token sent only in Socket.IO's `auth` payload
    arrives after the handshake, so scripts send it as a header (docs/api.md).
    """
    with app.request_context(environ):
        token = _bearer() or request.args.get("token") or None
        ident = _resolve(token)
    environ[HANDSHAKE_IDENTITY] = (token, ident)  # socket_auth's connect reuses it
    return ident


def socket_auth(auth):
    """Socket.IO connect check: same origin, then a token or a logged-in session.

    Returns None, or a function that says whether that identity still holds (the live
    namespace calls it on every subscribe and every few seconds): the token not revoked,
    the user not disabled and their session not ended by a logout or password change.
    """
    if not security.same_origin():
        return None
    token = auth.get("token") if isinstance(auth, dict) else None
    token = token if isinstance(token, str) and token else _bearer()
    # The connect runs in the handshake's environ: what it resolved for the same token
    # (a store read) is milliseconds old, and still_valid re-checks it from then on.
    seen = request.environ.get(HANDSHAKE_IDENTITY)
    ident = seen[1] if seen is not None and seen[0] == token else _resolve(token)
    if ident is None:
        return None
    store = accounts()
    if ident.kind == "token":
        def still_valid():
            return store.token_identity(token)
    elif ident.kind == "user":
        user_id, epoch = session.get("uid"), session.get("epoch")

        def still_valid():
            return store.session_user(user_id, epoch)
    else:
        def still_valid():
            return ident
    still_valid.identity = ident
    return still_valid


# -- wiring ------------------------------------------------------------------------------
def template_context() -> dict:
    settings = current_app.config["LOOKOUT"]
    ident = identity()
    return {"lookout_auth": {
        "enabled": settings.auth, "read_only": settings.read_only, "identity": ident,
        "can_control": bool(ident and ident.can("operator") and not settings.read_only),
        "roles": ROLES}}


def init_app(app) -> None:
    """Install the guard (the first before_request) and the page context."""
    settings = app.config["LOOKOUT"]
    app.extensions["lookout.accounts"] = AccountStore(app.extensions["lookout.engine"])
    app.extensions["lookout.socket_auth"] = socket_auth
    app.before_request(guard)
    app.context_processor(template_context)
    if not settings.auth:
        log.warning("AUTHENTICATION IS OFF (--no-auth): anyone who can reach this port "
                    "can see and control your workers. Use only on a trusted machine.")
    elif not _has_users(app):
        log.warning("no user can log in yet: create one with lookout users add NAME "
                    "--role admin --database '%s'", redact_url(settings.database_url))


def _has_users(app) -> bool:
    try:
        return app.extensions["lookout.accounts"].has_users()
    except Exception:  # noqa: BLE001 - no schema yet: the warning can wait for the page
        return True
