"""The audit trail: one record per control or admin request, allowed or refused.

Recording happens in an after_request hook on the audited blueprints, so a request that
the guard refused (401/403), that failed validation (400/404) or met a dead broker (503)
leaves its record exactly like a successful one; views only add what they learnt
(targets, parameters, replies) to `g.audit`. Records have their own retention
(`audit_retention`, LOOKOUT_AUDIT_RETENTION, a year by default), longer than task
history; records older than that are deleted by the web process at most once an hour.
"""
from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, current_app, g, jsonify, render_template, request
from sqlalchemy import Engine, delete, insert, select, update

from collectors.store.models_auth import AuditRecord
from dashboard.errors import ApiError, bad_parameter
from dashboard.query import parse_limit, parse_timestamp, reject_unknown

records = AuditRecord.__table__
MAX_JSON = 64 * 1024  # bound what one record stores, whatever a client sends
SECRET_KEYS = ("password", "token", "secret")
DEFAULT_RETENTION = 365 * 86400.0
PRUNE_EVERY = 3600.0
LIST_PARAMS = frozenset({"actor", "action", "outcome", "target", "since", "until",
                         "limit", "cursor"})
TARGET_ARGS = ("task_id", "hostname", "token_id")  # URL parts naming what is acted on
OUTCOMES = ("ok", "refused", "invalid", "error", "running")

bp = Blueprint("audit", __name__)


class AuditService:
    """Writes and queries audit records; prunes old ones at most once an hour."""

    def __init__(self, engine: Engine, retention: float = DEFAULT_RETENTION, clock=time.time):
        self.engine = engine
        self.retention = retention
        self.clock = clock
        self._pruned_at = 0.0

    def record(self, **fields: Any) -> int:
        now = self.clock()
        values = _encode(fields)
        values.setdefault("timestamp", now)
        values["updated_at"] = now
        with self.engine.begin() as conn:
            record_id = conn.execute(insert(records).values(**values)).inserted_primary_key[0]
        if self.retention and now - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = now
            self.prune(now - self.retention)
        return record_id

    def update(self, record_id: int, **fields: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(records).where(records.c.id == record_id)
                         .values(**_encode(fields), updated_at=self.clock()))

    def prune(self, before: float) -> int:
        with self.engine.begin() as conn:
            return conn.execute(delete(records).where(records.c.timestamp < before)).rowcount

    def get(self, record_id: int) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(select(records).where(records.c.id == record_id)).mappings().first()
        if row is None:
            raise ApiError(404, f"no audit record {record_id}")
        return _decode(row)

    def list(self, args) -> dict:
        """Newest first, keyset-paginated on id; filters are exact matches or time bounds."""
        reject_unknown(args, LIST_PARAMS)
        limit = parse_limit(args.get("limit"), default=50, maximum=500)
        where = []
        for name in ("actor", "action", "outcome"):
            if args.get(name):
                where.append(records.c[name] == args[name][:150])
        if args.get("target"):
            # Targets are a JSON list of strings: match one element exactly, quotes included.
            needle = json.dumps(args["target"][:255])
            where.append(records.c.targets.contains(needle, autoescape=True))
        if args.get("since"):
            where.append(records.c.timestamp >= parse_timestamp(args["since"], "since"))
        if args.get("until"):
            where.append(records.c.timestamp <= parse_timestamp(args["until"], "until"))
        if args.get("cursor"):
            try:
                where.append(records.c.id < int(args["cursor"]))
            except ValueError:
                raise bad_parameter("cursor", "malformed cursor") from None
        with self.engine.connect() as conn:
            rows = conn.execute(select(records).where(*where).order_by(records.c.id.desc())
                                .limit(limit + 1)).mappings().all()
        items = [_decode(row) for row in rows[:limit]]
        next_cursor = str(items[-1]["id"]) if len(rows) > limit else None
        return {"items": items, "next_cursor": next_cursor}


def _encode(fields: dict) -> dict:
    values = dict(fields)
    for name in ("targets", "parameters", "replies"):
        if name in values:
            text = json.dumps(values[name], default=str)
            values[name] = text if len(text) <= MAX_JSON else json.dumps(
                {"truncated": True, "head": text[:MAX_JSON]})
    if values.get("message"):
        values["message"] = str(values["message"])[:4000]
    return values


def _decode(row) -> dict:
    item = dict(row)
    for name in ("targets", "parameters", "replies"):
        item[name] = json.loads(item[name]) if item[name] else None
    return item


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "refused"
    if status < 500:
        return "invalid"
    return "error"


def audited(action):
    """Name a view's action (a string, or a function of the view arguments) for the trail,
    so a request refused before the view runs is recorded under the same name."""
    def decorate(view):
        view.audit_action = action
        return view
    return decorate


def _action() -> str:
    view = current_app.view_functions.get(request.endpoint)
    action = getattr(view, "audit_action", None) or request.endpoint.rsplit(".", 1)[-1]
    return action(request.view_args or {}) if callable(action) else action


def record_request(response):
    """after_request for audited blueprints: one record per request, whatever happened."""
    if g.get("audit_done") or g.get("audit_skip") or request.method == "GET":
        return response
    info = g.get("audit") or {}
    identity = g.get("identity")
    message = None
    if response.status_code >= 400 and response.is_json:
        message = ((response.get_json(silent=True) or {}).get("error") or {}).get("message")
    service(current_app).record(
        actor=identity.name if identity else "anonymous",
        role=identity.role if identity else None,
        remote_addr=request.remote_addr,
        action=info.get("action") or _action(),
        outcome=info.get("outcome") or outcome_of(response.status_code),
        status=response.status_code,
        targets=info.get("targets") or [str(v) for k, v in (request.view_args or {}).items()
                                        if k in TARGET_ARGS],
        parameters=info.get("parameters", _request_parameters()),
        replies=info.get("replies"),
        message=info.get("message") or message)
    g.audit_done = True
    return response


def _request_parameters() -> dict | None:
    """What the client asked for, for requests refused before a view parsed them."""
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict):
        return None
    return {k: ("***" if any(s in k.lower() for s in SECRET_KEYS) else v)
            for k, v in body.items()}


def service(app) -> AuditService:
    return app.extensions["lookout.audit"]


def require_role(role: str):
    from dashboard.auth import require_role as check  # auth imports this module

    return check(role)


@bp.get("/api/v1/audit")
def list_audit():
    require_role("operator")
    return jsonify(service(current_app).list(request.args))


@bp.get("/api/v1/audit/<int:record_id>")
def get_audit(record_id: int):
    """One record; bulk revokes update theirs as they progress, so pages poll this."""
    require_role("operator")
    return jsonify(service(current_app).get(record_id))


@bp.get("/audit")
def audit_page():
    require_role("operator")
    return render_template("audit.html", page="audit", outcomes=OUTCOMES)


def init_app(app) -> None:
    settings = app.config["LOOKOUT"]
    app.extensions["lookout.audit"] = AuditService(app.extensions["lookout.engine"],
                                                   settings.audit_retention)
    app.register_blueprint(bp)
