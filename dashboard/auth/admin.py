"""Who am I, and the admin API for users and API tokens (under /api/v1).

Every change here is audited like a control action; passwords and token secrets never
reach the audit trail, and a token's secret is shown once, in the response creating it.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from lookout.dashboard.audit.recorder import audited, note, record_request
from lookout.dashboard.auth.guard import accounts
from lookout.dashboard.web.errors import ApiError, InvalidField
from lookout.dashboard.web.params import json_body, row_id
from lookout.dashboard.web.roles import require_role

bp = Blueprint("accounts", __name__)
bp.after_request(record_request)


def _may_change_accounts():
    """Admins only; never in read-only mode, and never with --no-auth, where anyone who
    reaches the port is an admin and could mint a token that outlives the session (and
    works on any auth-on instance sharing the store)."""
    ident = require_role("admin", control=True)
    if not current_app.config["LOOKOUT"].auth:
        raise ApiError(403, "authentication is off (--no-auth): users and tokens cannot be "
                       "changed here; use `lookout users` on the command line")
    return ident


@bp.get("/admin")
def admin_page():
    require_role("admin")
    return render_template("auth/admin.html", page="admin")


@bp.get("/api/v1/me")
def me():
    ident = require_role("viewer")
    settings = current_app.config["LOOKOUT"]
    return jsonify(name=ident.name, role=ident.role, kind=ident.kind,
                   auth=settings.auth, read_only=settings.read_only)


@bp.get("/api/v1/users")
def list_users():
    require_role("admin")
    return jsonify(items=accounts().list_users())


@bp.post("/api/v1/users")
@audited("user.add")
def add_user():
    _may_change_accounts()
    body = json_body()
    username, role = str(body.get("username", "")), str(body.get("role", "viewer"))
    note(targets=[username], parameters={"role": role})
    try:
        user_id = accounts().add_user(username, str(body.get("password", "")), role)
    except InvalidField as exc:
        raise ApiError(400, str(exc), exc.field) from None
    return jsonify(id=user_id, username=username, role=role), 201


@bp.get("/api/v1/tokens")
def list_tokens():
    require_role("admin")
    return jsonify(items=accounts().list_tokens())


@bp.post("/api/v1/tokens")
@audited("token.add")
def add_token():
    ident = _may_change_accounts()
    body = json_body()
    name, role = str(body.get("name", "")), str(body.get("role", "viewer"))
    note(targets=[name], parameters={"role": role})
    try:
        token_id, secret = accounts().add_token(name, role, created_by=ident.name)
    except InvalidField as exc:
        raise ApiError(400, str(exc), exc.field) from None
    return jsonify(id=token_id, name=name, role=role, token=secret), 201


@bp.delete("/api/v1/tokens/<int:token_id>")
@audited("token.revoke")
def revoke_token(token_id: int):
    _may_change_accounts()
    note(targets=[str(token_id)], parameters={})
    if not accounts().revoke_token(row_id(token_id, "active token")):
        raise ApiError(404, f"no active token {token_id}")
    current_app.extensions["lookout.live_sessions"].end(token_id=token_id)
    return jsonify(id=token_id, revoked=True)

