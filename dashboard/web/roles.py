"""Who is asking, and the one check every view uses: `require_role`.

Roles are ordered: viewer (read everything but the audit trail), operator (also control
workers and tasks, read the audit trail), admin (also manage users and tokens). The auth
package's request guard puts the caller's `Identity` on `flask.g`; everything else only
asks this module. Read-only mode is part of the same check (`control=True`), so a control
refused for the role and one refused for read-only mode look alike to every caller.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g

from lookout.dashboard.web.errors import ApiError, InvalidField

ROLES = ("viewer", "operator", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Identity:
    """Who is making a request: a user, a token, or everyone when auth is off."""

    name: str  # shown in the audit trail
    role: str
    kind: str  # "user", "token" or "noauth"
    user_id: int | None = None
    token_id: int | None = None

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


def check_role(role: str) -> str:
    """`role` if it names a role; ValueError otherwise (for the CLI and admin API)."""
    if role not in RANK:
        raise InvalidField("role", f"unknown role {role!r} (one of: {', '.join(ROLES)})")
    return role


def identity() -> Identity | None:
    return g.get("identity")


def require_role(role: str, *, control: bool = False) -> Identity:
    """The caller's identity if it has `role` or better; 401/403 otherwise.

    `control=True` also refuses in read-only mode: role first, then read-only, both
    before anything is parsed or sent.
    """
    ident = identity()
    if ident is None:
        raise ApiError(401, "authentication required")
    if not ident.can(role):
        raise ApiError(403, f"{role} role required (you are {ident.role})", needs_role=role)
    if control and current_app.config["LOOKOUT"].read_only:
        raise ApiError(403, "read-only mode: control actions are disabled")
    return ident
