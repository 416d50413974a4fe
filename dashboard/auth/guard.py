"""The request guard: establish who is asking on every request, refuse the anonymous.

People log in with a password and get a session cookie; scripts send
`Authorization: Bearer <token>`. Every request except the login page, static files and
/healthz needs one of the two, unless the app runs with `--no-auth`, where everyone is an
admin (for local use only, announced by a log warning and a banner). Socket.IO
connections skip before_request, so they are checked by `socket_auth`, which the live
namespace calls on connect. What each role may do is checked by web/roles.py.
"""
from __future__ import annotations

import logging

from flask import current_app, g, redirect, request, session, url_for

from lookout.dashboard.auth.accounts import AccountStore
from lookout.dashboard.web import security
from lookout.dashboard.web.errors import ApiError
from lookout.dashboard.web.roles import ROLES, Identity, identity

log = logging.getLogger("lookout.auth")
NOAUTH = Identity("local (no auth)", "admin", "noauth")
PUBLIC_ENDPOINTS = frozenset({"static", "auth.login", "health.healthz"})


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


def socket_auth(auth) -> bool:
    """Socket.IO connect check: same origin, then a token or a logged-in session."""
    if not security.same_origin():
        return False
    token = auth.get("token") if isinstance(auth, dict) else None
    token = token if isinstance(token, str) and token else _bearer()
    return _resolve(token) is not None


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
