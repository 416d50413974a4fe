"""Reconciling open tasks with the app's result backend.

Events can be missed: a worker killed before sending task-succeeded, a Redis collector
restarted while tasks finished (pub/sub keeps nothing). When the app (`-A proj`) has a
result backend, the task's real outcome is there. Every INTERVAL seconds the holder of the
"reconcile" lease asks the backend about open tasks (PENDING, RECEIVED, STARTED) that have
been quiet for SETTLE seconds; a final state found there becomes an ordinary event
(task-succeeded / task-failed / task-revoked from hostname RECONCILER, stamped with the
backend's date_done) handed to the writer, so the row, timeline, rollups and metrics
follow the usual path. Each task is asked again at most every RECHECK seconds. A REVOKED
there is believed only for a task that has not started (see `_event`).
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy import Engine, select

from lookout.collectors.buffer import EventBuffer
from lookout.collectors.events import InvalidEvent, validate
from lookout.collectors.lease import JobLease
from lookout.collectors.outage_log import OutageLog
from lookout.collectors.stats import CollectorStats
from lookout.collectors.threads import join_or_report
from lookout.core.store.models import Task

log = logging.getLogger(__name__)
RECONCILER = "lookout@result-backend"
INTERVAL = 30.0
SETTLE = 30.0
RECHECK = 300.0
BATCH = 200
OPEN = ("PENDING", "RECEIVED", "STARTED")
FINAL_EVENTS = {"SUCCESS": "task-succeeded", "FAILURE": "task-failed",
                "REVOKED": "task-revoked"}


def backend_of(app) -> Any | None:
    """The app's result backend, or None when it has none Lookout can ask."""
    if app is None:
        return None
    try:
        from celery.backends.base import DisabledBackend

        backend = app.backend
    except Exception as exc:  # noqa: BLE001 - a misconfigured backend: say so, do without
        log.warning("result backend unusable, no reconciliation: %s", exc)
        return None
    return None if isinstance(backend, DisabledBackend) else backend


class Reconciler:
    def __init__(self, engine: Engine, buffer: EventBuffer, settings, app,
                 clock: Callable[[], float] = time.time, interval: float = INTERVAL,
                 settle: float = SETTLE, stats: CollectorStats | None = None):
        self.engine, self.buffer, self.settings, self.app = engine, buffer, settings, app
        self.stats = stats
        self.clock, self.interval, self.settle = clock, interval, settle
        self.lease = JobLease(engine, "reconcile", max(60.0, 3 * interval), clock,
                              settings.collector_name)
        self._asked: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Reconciler":
        self._thread = threading.Thread(target=self._run, name="lookout-reconcile",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        join_or_report(self._thread, timeout)
        self.lease.release()

    def _run(self) -> None:
        outage = OutageLog(log, "reconciliation with the result backend")
        while not self._stop.wait(self.interval):
            try:
                if self.lease.acquire():
                    self.run_once()
            except Exception as exc:  # noqa: BLE001 - a backend or database outage: next round
                outage.failed(exc)
            else:
                outage.succeeded()

    def candidates(self, now: float) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Task.uuid, Task.state, Task.timestamp)
                                .where(Task.state.in_(OPEN), Task.timestamp < now - self.settle)
                                .order_by(Task.timestamp).limit(BATCH * 5)).mappings().all()
        fresh = [dict(r) for r in rows if now - self._asked.get(r["uuid"], 0) > RECHECK]
        return fresh[:BATCH]

    def run_once(self) -> int:
        """Ask the backend about quiet open tasks; returns the events handed to the writer."""
        now = self.clock()
        events = []
        for row in self.candidates(now):
            self._asked[row["uuid"]] = now
            event = self._event(row["uuid"], row["state"], now)
            if event is not None:
                events.append(event)
        if len(self._asked) > 100_000:  # forget old asks: memory stays bounded
            self._asked = {k: t for k, t in self._asked.items() if now - t < RECHECK}
        if events:
            self.buffer.put(events)
            if self.stats is not None:
                self.stats.reconciled += len(events)
            log.info("reconciled %d task(s) from the result backend", len(events))
        return len(events)

    def _event(self, task_id: str, state: str, now: float):
        meta = self.app.AsyncResult(task_id).backend.get_task_meta(task_id)
        kind = FINAL_EVENTS.get(meta.get("status"))
        if kind is None or (kind == "task-revoked" and state == "STARTED"):
            # A plain revoke leaves a running task running, yet every worker not running
            # it writes REVOKED if the backend says PENDING, which it does for a running
            # task unless task_track_started is on (Celery 5.7, worker/control.py). The
            # task reports its own end; a terminate's task-revoked comes from its worker.
            return None
        stamp = _epoch(meta.get("date_done")) or now
        raw: dict[str, Any] = {"type": kind, "uuid": task_id, "hostname": RECONCILER,
                               "timestamp": stamp, "utcoffset": 0, "pid": 0, "clock": 0}
        if kind == "task-succeeded":
            raw["result"] = repr(meta.get("result"))
        elif kind == "task-failed":
            raw["exception"] = repr(meta.get("result"))
            raw["traceback"] = meta.get("traceback") or ""
        try:
            return validate(raw, now, self.settings.max_field_size)
        except InvalidEvent as exc:
            log.warning("backend state of %s not usable: %s", task_id, exc)
            return None


def _epoch(done: Any) -> float | None:
    """date_done as the backends give it: a datetime, or ISO text (naive means UTC)."""
    if isinstance(done, str):
        try:
            done = datetime.fromisoformat(done)
        except ValueError:
            return None
    if not isinstance(done, datetime):
        return None
    return (done if done.tzinfo else done.replace(tzinfo=timezone.utc)).timestamp()
