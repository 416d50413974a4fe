"""The audit trail's store: writes, updates, lists and prunes audit records.

Records have their own retention (`audit_retention`, LOOKOUT_AUDIT_RETENTION, a year by
default), longer than task history; records older than that are deleted by the web
process at most once an hour. What goes into a record is decided in recorder.py.
"""
from __future__ import annotations

import json
import math
import time
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from lookout.core.store.models_auth import AuditRecord
from lookout.dashboard.web.errors import ApiError, bad_parameter
from lookout.dashboard.web.params import (
    MAX_INT, MAX_ROW_ID, parse_limit, parse_timestamp, reject_unknown,
)

records = AuditRecord.__table__
MAX_JSON = 64 * 1024  # bound what one record stores, whatever a client sends
SECRET_KEYS = ("password", "token", "secret")
DEFAULT_RETENTION = 365 * 86400.0
PRUNE_EVERY = 3600.0
OUTCOMES = ("ok", "partial", "failed", "refused", "invalid", "error", "running")
LIST_PARAMS = frozenset({"actor", "action", "outcome", "target", "since", "until",
                         "limit", "cursor"})
OUTCOMES = ("ok", "partial", "failed", "refused", "invalid", "error", "running")


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
        if args.get("outcome") and args["outcome"] not in OUTCOMES:
            raise bad_parameter("outcome", f"one of {', '.join(OUTCOMES)}")
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
                cursor = int(args["cursor"])
                if not 0 < cursor <= MAX_INT:
                    raise ValueError(cursor)
                # Ids end at MAX_ROW_ID: past it, PostgreSQL refused the parameter (a 500).
                where.append(records.c.id <= min(cursor - 1, MAX_ROW_ID))
            except ValueError:
                raise bad_parameter("cursor", "malformed cursor") from None
        with self.engine.connect() as conn:
            rows = conn.execute(select(records).where(*where).order_by(records.c.id.desc())
                                .limit(limit + 1)).mappings().all()
        items = [_decode(row) for row in rows[:limit]]
        next_cursor = str(items[-1]["id"]) if len(rows) > limit else None
        return {"items": items, "next_cursor": next_cursor}


def _finite(value):
    """JSON has no Infinity or NaN: a request carrying 1e999 is recorded as text, so the
    trail stays valid JSON for every reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _encode(fields: dict) -> dict:
    values = dict(fields)
    for name in ("targets", "parameters", "replies"):
        if name in values:
            text = json.dumps(_finite(values[name]), default=str, allow_nan=False)
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


