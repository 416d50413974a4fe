"""The one way a request becomes an audit record: views say what, the hook writes it.

Recording happens in an after_request hook on the audited blueprints, so a request that
the guard refused (401/403), that failed validation (400/404) or met a dead broker (503)
leaves its record exactly like a successful one. Views only `note()` what they learnt
(targets, parameters, replies, a better outcome); a view that needs its record's id
before answering (a bulk revoke reporting progress on it) calls `write_now()`, which is
the same writer run early.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import current_app, g, request
from werkzeug.exceptions import HTTPException

from lookout.dashboard.audit.service import SECRET_KEYS, AuditService
from lookout.dashboard.web.errors import STORE_UNAVAILABLE

log = logging.getLogger(__name__)
TARGET_ARGS = ("task_id", "hostname", "token_id")  # URL parts naming what is acted on


def audit_service() -> AuditService:
    return current_app.extensions["lookout.audit"]


def audited(action, targets=None):
    """Name a view's action (a string, or a function of the view arguments) for the trail,
    so a request refused before the view runs is recorded under the same name; `targets`
    (a function of the view arguments) when its URL names them otherwise than by
    `TARGET_ARGS`."""
    def decorate(view):
        view.audit_action = action
        view.audit_targets = targets
        return view
    return decorate


def note(**info: Any) -> None:
    """What this request is about: action, targets, parameters, replies, outcome,
    message, actor. Called as soon as it is known, so a later 400/404/503 still names it."""
    g.audit = {**(g.get("audit") or {}), **info}


def skip() -> None:
    """This request changed nothing (a dry run): leave no record, as for a GET."""
    g.audit_skip = True


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "refused"
    if status < 500:
        return "invalid"
    return "error"


def record_request(response):
    """after_request for audited blueprints: one record per request, whatever happened."""
    if g.get("audit_done") or g.get("audit_skip") or request.method == "GET":
        return response
    message = None
    if response.status_code >= 400 and response.is_json:
        message = ((response.get_json(silent=True) or {}).get("error") or {}).get("message")
    try:
        write_now(response.status_code, message)
    except STORE_UNAVAILABLE as exc:
        # The store is away (a refused login, a 503 from the store itself): the record
        # goes to the log, whole, and the answer stays what it was instead of a 500.
        log.error("audit record not written, store unavailable (%s): %s %s by %s -> %s %s",
                  type(exc).__name__, request.method, request.path,
                  g.get("identity").name if g.get("identity") else "anonymous",
                  response.status_code, {**(g.get("audit") or {}), "message": message})
    return response


def write_now(status: int, message: str | None = None, **overrides: Any) -> int:
    """Write this request's record now (once); returns its id."""
    info = {**(g.get("audit") or {}), **overrides}
    identity = g.get("identity")
    record_id = audit_service().record(
        actor=info.get("actor") or (identity.name if identity else "anonymous"),
        role=identity.role if identity else None,
        remote_addr=request.remote_addr,
        action=info.get("action") or _action(),
        outcome=info.get("outcome") or outcome_of(status),
        status=status,
        targets=info.get("targets") or _url_targets(),
        parameters=info.get("parameters", _request_parameters()),
        replies=info.get("replies"),
        message=info.get("message") or message)
    g.audit_done = True
    return record_id


def _url_targets() -> list[str]:
    args = request.view_args or {}
    view = current_app.view_functions.get(request.endpoint)
    named = getattr(view, "audit_targets", None)
    if callable(named):
        return [str(t) for t in named(args)]
    return [str(v) for k, v in args.items() if k in TARGET_ARGS]


def _action() -> str:
    view = current_app.view_functions.get(request.endpoint)
    action = getattr(view, "audit_action", None) or (request.endpoint or "?").rsplit(".", 1)[-1]
    return action(request.view_args or {}) if callable(action) else action


def _request_parameters() -> dict | None:
    """What the client asked for, for requests refused before a view parsed them.

    A body that cannot be read (over the size cap: a 413; nested past the recursion
    limit) gives none: raised from here, the error replaced the refusal with a 500 and
    the record was never written (a hostile-input trial)."""
    try:
        body = request.get_json(silent=True) if request.is_json else None
    except (HTTPException, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    return {k: ("***" if any(s in k.lower() for s in SECRET_KEYS) else v)
            for k, v in body.items()}
