"""Log in and out (the `auth` blueprint); both are audited like control actions."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from lookout.core.config import redact_url
from lookout.dashboard.audit.recorder import audited, note, record_request
from lookout.dashboard.auth.guard import accounts
from lookout.dashboard.auth.throttle import LoginThrottle

bp = Blueprint("auth", __name__)
bp.after_request(record_request)


def _throttle() -> LoginThrottle:
    extensions = current_app.extensions
    if "lookout.login_throttle" not in extensions:
        extensions["lookout.login_throttle"] = LoginThrottle(extensions["lookout.engine"])
    return extensions["lookout.login_throttle"]


def _safe_next(target: str | None) -> str:
    """Only same-site paths: `next` must never send a fresh login to another site."""
    parts = urlsplit(target or "")
    if target and target.startswith("/") and not target.startswith("//") \
            and not parts.scheme and not parts.netloc and "\\" not in target \
            and target.isprintable():  # no CR/LF (header injection) or other controls
        return target
    return "/"


@bp.route("/login", methods=["GET", "POST"])
@audited("login")
def login():
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("auth/login.html", next=next_url, error=None,
                               first_run=_first_run())
    throttle = _throttle()
    username = request.form.get("username", "")[:150]
    address = request.remote_addr or "?"
    note(actor=username or "?", targets=[], parameters={})
    over = throttle.blocked(address, username)
    if over is not None:
        what = "from this address" if over == "address" else "for this account"
        return _login_failed(f"too many failed logins {what}; wait a few minutes", 429)
    result = accounts().authenticate(username, request.form.get("password", ""))
    if result is None:
        throttle.failed(address, username)
        return _login_failed("wrong username or password", 401)
    throttle.succeeded(username)
    ident, epoch = result
    session.clear()  # a fresh session (and CSRF token) for the new identity
    session.permanent = True
    session.update(uid=ident.user_id, epoch=epoch)
    g.identity = ident
    note(actor=ident.name)
    return redirect(next_url)


def _login_failed(message: str, status: int):
    note(outcome="refused", message=message)
    return render_template("auth/login.html", next=_safe_next(request.form.get("next")),
                           error=message, first_run=_first_run()), status


def _first_run() -> str | None:
    """With no user in the store, the exact command that creates the first one."""
    if accounts().has_users():
        return None
    return first_user_command(current_app.config["LOOKOUT"].database_url)


def first_user_command(database_url: str) -> str:
    return f"lookout users add NAME --role admin --database '{redact_url(database_url)}'"


@bp.post("/logout")
@audited("logout")
def logout():
    """Ends this user's sessions everywhere: a copied cookie dies with the original, and
    their live sockets in this process are closed now (others at their next check)."""
    ident = g.get("identity")
    if ident is not None and ident.kind == "user" and ident.user_id is not None:
        accounts().end_sessions(ident.user_id)
        current_app.extensions["lookout.live_sessions"].end(user_id=ident.user_id)
    session.clear()
    return redirect(url_for("auth.login"))
