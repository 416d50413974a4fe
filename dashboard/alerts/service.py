"""Alerts as the collector recorded them, and alert rules as admins edit them.

The collector evaluates (collectors/alerts); the web side only reads alerts and writes
rules, checked with the same definitions (core/alerting.py). Rules loaded from the rules
file belong to the file: the API refuses to change them.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from lookout.core.alerting import KINDS, RuleError, validate_rule
from lookout.core.store.models import Alert, AlertRule
from lookout.dashboard.web.errors import ApiError, bad_parameter


def _rule(row) -> dict[str, Any]:
    rule = dict(row)
    rule["params"] = json.loads(rule["params"] or "{}")
    rule["notify"] = json.loads(rule["notify"] or "[]")
    return rule


def _alert(row) -> dict[str, Any]:
    alert = dict(row)
    alert["deliveries"] = json.loads(alert["deliveries"] or "[]")
    return alert


class AlertService:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time):
        self.engine, self.clock = engine, clock

    def alerts(self, status: str | None, limit: int) -> dict[str, Any]:
        query = select(Alert.__table__).order_by(Alert.fired_at.desc(), Alert.id.desc())
        if status:
            query = query.where(Alert.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).mappings().all()
            firing = conn.execute(select(Alert.id).where(Alert.status == "firing")).all()
        return {"items": [_alert(r) for r in rows], "firing": len(firing)}

    def rules(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(AlertRule.__table__).order_by(AlertRule.name)
                                ).mappings().all()
        kinds = {kind: {field: {"type": t, "default": d, "help": h}
                        for field, (t, d, h) in spec.items()} for kind, spec in KINDS.items()}
        return {"items": [_rule(r) for r in rows], "kinds": kinds}

    def _get(self, conn, rule_id: int):
        row = conn.execute(select(AlertRule.__table__).where(AlertRule.id == rule_id)
                           ).mappings().first()
        if row is None:
            raise ApiError(404, f"no alert rule {rule_id}")
        if row["source"] == "file":
            raise ApiError(409, f"rule {row['name']!r} comes from the rules file: edit the file")
        return row

    @staticmethod
    def _checked(body: dict[str, Any]) -> dict[str, Any]:
        try:
            rule = validate_rule(body)
        except RuleError as exc:
            raise bad_parameter(exc.field, str(exc).split(": ", 1)[-1]) from None
        return {**rule, "params": json.dumps(rule["params"]), "notify": json.dumps(rule["notify"])}

    def create(self, body: dict[str, Any], actor: str | None) -> dict[str, Any]:
        values = {**self._checked(body), "source": "api", "updated_by": actor,
                  "updated_at": self.clock()}
        try:
            with self.engine.begin() as conn:
                rule_id = conn.execute(insert(AlertRule).values(**values)).inserted_primary_key[0]
        except IntegrityError:
            raise bad_parameter("name", f"a rule named {body.get('name')!r} exists") from None
        return self.rule(rule_id)

    def update(self, rule_id: int, body: dict[str, Any], actor: str | None) -> dict[str, Any]:
        values = {**self._checked(body), "updated_by": actor, "updated_at": self.clock()}
        try:
            with self.engine.begin() as conn:
                self._get(conn, rule_id)
                conn.execute(update(AlertRule).where(AlertRule.id == rule_id).values(**values))
        except IntegrityError:
            raise bad_parameter("name", f"a rule named {body.get('name')!r} exists") from None
        return self.rule(rule_id)

    def delete(self, rule_id: int) -> dict[str, Any]:
        with self.engine.begin() as conn:
            row = self._get(conn, rule_id)
            conn.execute(delete(AlertRule).where(AlertRule.id == rule_id))
        return _rule(row)

    def rule(self, rule_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(AlertRule.__table__).where(AlertRule.id == rule_id)
                               ).mappings().first()
        if row is None:
            raise ApiError(404, f"no alert rule {rule_id}")
        return _rule(row)
