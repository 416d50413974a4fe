"""Who may do what: identities, the request guard, roles, login/logout, users and tokens.

Roles are ordered: viewer (read everything but the audit trail), operator (also control
workers and tasks, read the audit trail), admin (also manage users and tokens). People log
in with a password and get a session cookie; scripts send `Authorization: Bearer <token>`.
Every request except the login page, static files and /healthz needs one of the two,
unless the app runs with `--no-auth`, where everyone is an admin (for local use only,
announced by a log warning and a banner). Socket.IO connections skip before_request, so
they are checked by `socket_auth`, which the live namespace calls on connect.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from urllib.parse import urlsplit

from flask import (Blueprint, current_app, g, redirect, render_template, request,
                   session, url_for)

from dashboard import security
from dashboard.accounts import ROLES, AccountStore, Identity
from dashboard.audit import audited, record_request, service as audit_service
from dashboard.errors import ApiError

log = logging.getLogger("lookout.auth")
NOAUTH = Identity("local (no auth)", "admin", "noauth")
PUBLIC_ENDPOINTS = frozenset({"static", "auth.login", "health.healthz"})
LOGIN_WINDOW = 300.0
LOGIN_MAX_FAILURES = 10

bp = Blueprint("auth", __name__)


bp.after_request(record_request)


def accounts() -> AccountStore:
    return current_app.extensions["lookout.accounts"]


def identity() -> Identity | None:
    return g.get("identity")


def require_role(role: str) -> Identity:
    """The caller's identity if it has `role` or better; 401/403 otherwise."""
    ident = identity()
    if ident is None:
        raise ApiError(401, "authentication required")
    if not ident.can(role):
        raise ApiError(403, f"{role} role required (you are {ident.role})")
    return ident


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


# -- login -----------------------------------------------------------------------------
class LoginThrottle:
    """At most LOGIN_MAX_FAILURES failed logins per client address per window."""

    def __init__(self):
        self._failures: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def blocked(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            failures = self._failures[key]
            while failures and failures[0] < now - LOGIN_WINDOW:
                failures.popleft()
            return len(failures) >= LOGIN_MAX_FAILURES

    def failed(self, key: str) -> None:
        with self._lock:
            if len(self._failures) > 10_000:
                self._failures.clear()
            self._failures[key].append(time.monotonic())


def _safe_next(target: str | None) -> str:
    """Only same-site paths: `next` must never send a fresh login to another site."""
    parts = urlsplit(target or "")
    if target and target.startswith("/") and not target.startswith("//") \
            and not parts.scheme and not parts.netloc and "\\" not in target:
        return target
    return "/"


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=next_url, error=None)
    throttle: LoginThrottle = current_app.extensions["lookout.login_throttle"]
    username = request.form.get("username", "")[:150]
    if throttle.blocked(request.remote_addr or "?"):
        return _login_failed(username, "too many failed logins; wait a few minutes", 429)
    result = accounts().authenticate(username, request.form.get("password", ""))
    if result is None:
        throttle.failed(request.remote_addr or "?")
        return _login_failed(username, "wrong username or password", 401)
    ident, epoch = result
    session.clear()  # a fresh session (and CSRF token) for the new identity
    session.permanent = True
    session.update(uid=ident.user_id, epoch=epoch)
    g.identity = ident
    _audit_login(ident.name, "ok", 302, None)
    g.audit_done = True
    return redirect(next_url)


def _login_failed(username: str, message: str, status: int):
    _audit_login(username or "?", "refused", status, message)
    g.audit_done = True
    return render_template("login.html", next=_safe_next(request.form.get("next")),
                           error=message), status


def _audit_login(actor: str, outcome: str, status: int, message: str | None) -> None:
    audit_service(current_app).record(actor=actor, role=None, remote_addr=request.remote_addr,
                                action="login", outcome=outcome, status=status,
                                targets=[], parameters={}, message=message)


@bp.post("/logout")
@audited("logout")
def logout():
    session.clear()
    return redirect(url_for("auth.login"))


# -- wiring ------------------------------------------------------------------------------
def template_context() -> dict:
    settings = current_app.config["LOOKOUT"]
    ident = identity()
    return {"lookout_auth": {
        "enabled": settings.auth, "read_only": settings.read_only, "identity": ident,
        "can_control": bool(ident and ident.can("operator") and not settings.read_only),
        "roles": ROLES}}


def init_app(app) -> None:
    from dashboard import accounts_api  # it imports this module, so not at the top

    settings = app.config["LOOKOUT"]
    app.extensions["lookout.accounts"] = AccountStore(app.extensions["lookout.engine"])
    app.extensions["lookout.login_throttle"] = LoginThrottle()
    app.extensions["lookout.socket_auth"] = socket_auth
    security.init_app(app)
    app.before_request(guard)
    app.context_processor(template_context)
    app.register_blueprint(bp)
    app.register_blueprint(accounts_api.bp)
    if not settings.auth:
        log.warning("AUTHENTICATION IS OFF (--no-auth): anyone who can reach this port "
                    "can see and control your workers. Use only on a trusted machine.")
