"""The alert engine: evaluate every enabled rule, fire once, resolve once, cool down.

Runs on a thread ("lookout-alerts") in each collector, but only the holder of the
"alerts" lease evaluates, so several collectors (or a restarted one) never notify twice;
a dead holder's lease expires after three intervals and another takes over.

For each rule, the keys its evaluator finds (rules.py) are compared with the rule's open
alerts: a new key fires; a key no longer found resolves once it has stayed clear for the
rule's `cooldown`, and found again before that it is the same, still firing alert. So a
flapping condition is one alert, and nobody gets an all-clear shortly before the next
page: the former cooldown (no new firing within it after a resolution) resolved a real
backlog on a sampling gap and then kept it quiet for ten minutes (an on-call trial).
Each firing and each resolution notifies the rule's channels exactly once; deliveries
are kept on the alert.
Rules from LOOKOUT_ALERT_RULES_FILE are (re)loaded when the file changes.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
import tomllib
from types import SimpleNamespace
from typing import Any, Callable

from sqlalchemy import Engine, delete, insert, select, update

from lookout.collectors.alerts.notify import deliver
from lookout.collectors.alerts.failure_index import FailureIndex
from lookout.collectors.alerts.rules import (
    EVALUATORS, MAX_FAILURES, RESOLUTIONS, new_failure_group,
)
from lookout.collectors.lease import JobLease
from lookout.collectors.outage_log import OutageLog
from lookout.collectors.threads import join_or_report
from lookout.core.alerting import RuleError, validate_rule
from lookout.core.store.models import Alert, AlertRule

log = logging.getLogger(__name__)
LEASE = "alerts"


class AlertEngine:
    def __init__(self, engine: Engine, settings, clock: Callable[[], float] = time.time):
        self.engine, self.settings, self.clock = engine, settings, clock
        self._outage = OutageLog(log, "alert evaluation")
        self.lease = JobLease(engine, LEASE, max(30.0, 3 * settings.alert_interval), clock,
                              settings.collector_name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rules_mtime: float | None = None
        # This engine's evaluators: new failure groups keep their fingerprints between
        # rounds in an index this engine owns (failure_index.py).
        self.failures = FailureIndex(MAX_FAILURES)
        self.evaluators = {**EVALUATORS, "new_failure_group": functools.partial(
            new_failure_group, index=self.failures)}

    # -- thread --------------------------------------------------------------------
    def start(self) -> "AlertEngine":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lookout-alerts", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Let the round in flight finish, then end (see `stop`)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if join_or_report(self._thread, timeout):
            self._thread = None
        self.lease.release()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - a database outage must not end the thread
                self._outage.failed(exc)
            else:
                self._outage.succeeded()
            self._stop.wait(self.settings.alert_interval)

    def tick(self) -> list[dict[str, Any]]:
        """One round if this process holds the lease; returns the notifications made."""
        if not self.acquire():
            return []
        self.load_rules_file()
        return self.evaluate()

    def acquire(self) -> bool:
        return self.lease.acquire()

    # -- rules file ------------------------------------------------------------------
    def load_rules_file(self) -> None:
        path = self.settings.alert_rules_file
        if not path:
            return
        try:
            mtime = os.stat(path).st_mtime
            if mtime == self._rules_mtime:
                return
            with open(path, "rb") as handle:
                rules = [validate_rule(r) for r in tomllib.load(handle).get("rule", [])]
        except (OSError, tomllib.TOMLDecodeError, RuleError) as exc:
            log.error("alert rules file %s not loaded: %s", path, exc)
            return
        now = self.clock()
        with self.engine.begin() as conn:
            names = [r["name"] for r in rules]
            conn.execute(delete(AlertRule).where(AlertRule.source == "file",
                                                 AlertRule.name.not_in(names)))
            for rule in rules:
                values = {**rule, "params": json.dumps(rule["params"]),
                          "notify": json.dumps(rule["notify"]), "source": "file",
                          "updated_by": f"file {os.path.basename(path)}", "updated_at": now}
                if not conn.execute(update(AlertRule).where(AlertRule.name == rule["name"])
                                    .values(**values)).rowcount:
                    conn.execute(insert(AlertRule).values(**values))
        self._rules_mtime = mtime
        log.info("loaded %d alert rules from %s", len(rules), path)

    # -- evaluation ------------------------------------------------------------------
    def evaluate(self) -> list[dict[str, Any]]:
        now = self.clock()
        sent: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            rules = _records(conn, select(AlertRule.__table__).where(
                AlertRule.enabled.is_(True)).order_by(AlertRule.id))
        for rule in rules:
            try:
                sent += self._evaluate_rule(rule, now)
            except Exception:  # noqa: BLE001 - one broken rule must not silence the rest
                log.exception("alert rule %r failed", rule.name)
        return sent

    def _evaluate_rule(self, rule: AlertRule, now: float) -> list[dict[str, Any]]:
        params = json.loads(rule.params or "{}")
        with self.engine.connect() as conn:
            found = self.evaluators[rule.kind](conn, now, params, self.settings)
            open_alerts = {a.key: a for a in _records(conn, select(Alert.__table__).where(
                Alert.rule_id == rule.id, Alert.status == "firing"))}
        sent = []
        for key, (value, message) in sorted(found.items()):
            if value is None:  # undecided: neither fires nor moves an open alert
                continue
            if key in open_alerts:
                if open_alerts[key].clear_since is not None:  # back within the cooldown
                    self._set_clear_since(open_alerts[key], None, now)
                continue
            alert = {"rule_id": rule.id, "rule_name": rule.name, "kind": rule.kind,
                     "key": key[:255], "status": "firing", "message": message[:4000],
                     "value": value, "fired_at": now, "resolved_at": None, "updated_at": now}
            # In the collector's log too: the record of what fired when, beside the rest.
            log.warning("alert firing: %s [%s]: %s", rule.name, key, message[:500])
            deliveries = self._notify(rule, alert, "firing")
            with self.engine.begin() as conn:
                conn.execute(insert(Alert).values(**alert, deliveries=json.dumps(deliveries)))
            sent += deliveries
        for key, alert in open_alerts.items():
            if key in found:
                continue
            if alert.clear_since is None:
                self._set_clear_since(alert, now, now)
                continue
            if now - alert.clear_since < rule.cooldown:
                continue
            resolution = self._resolution(rule, params, key, now)
            record = {"rule_id": rule.id, "rule_name": rule.name, "kind": rule.kind,
                      "key": key, "status": "resolved", "message": alert.message,
                      "value": alert.value, "fired_at": alert.fired_at, "resolved_at": now,
                      "resolution": resolution}
            log.info("alert resolved: %s [%s] after %.0f s: %s", rule.name, key,
                     now - alert.fired_at, resolution or "cleared")
            deliveries = self._notify(rule, record, "resolved")
            with self.engine.begin() as conn:
                conn.execute(update(Alert).where(Alert.id == alert.id).values(
                    status="resolved", resolved_at=now, updated_at=now, resolution=resolution,
                    deliveries=json.dumps(json.loads(alert.deliveries or "[]") + deliveries)))
            sent += deliveries
        return sent

    def _set_clear_since(self, alert: SimpleNamespace, since: float | None,
                         now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(Alert).where(Alert.id == alert.id).values(
                clear_since=since, updated_at=now))

    def _resolution(self, rule: AlertRule, params: dict, key: str, now: float) -> str | None:
        """Why `key` resolved, in words (rules.RESOLUTIONS), or None: "cleared"."""
        explain = RESOLUTIONS.get(rule.kind)
        if explain is None:
            return None
        try:
            with self.engine.connect() as conn:
                return explain(conn, now, params, key)[:500]
        except Exception:  # noqa: BLE001 - the resolution is still sent, as "cleared"
            log.exception("alert rule %r: explaining the resolution of %s failed",
                          rule.name, key)
            return None

    def _notify(self, rule: AlertRule, alert: dict[str, Any], event: str) -> list[dict]:
        channels = json.loads(rule.notify or "[]") or [
            c for c in (self.settings.alert_webhook_url,
                        self.settings.alert_email_to and f"mailto:{self.settings.alert_email_to}")
            if c]
        deliveries = [{**deliver(c, alert, event, self.settings), "at": self.clock()}
                      for c in channels]
        for d in deliveries:
            if not d["ok"]:
                log.warning("alert %s %s to %s failed: %s", rule.name, event, d["channel"],
                            d["error"])
        return deliveries


def _records(conn, query) -> list[SimpleNamespace]:
    """Rows with attribute access (the engine uses Core connections, not ORM sessions)."""
    return [SimpleNamespace(**row) for row in conn.execute(query).mappings()]
