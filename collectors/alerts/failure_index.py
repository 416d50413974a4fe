"""Fingerprints of recent failures, kept between alert evaluations and read incrementally.

The `new_failure_group` rule compares failures of its window with those of a lookback
period before it (a week by default). Read afresh every evaluation (every 15 s), that was
up to 50,000 failed rows, tracebacks included, fingerprinted each time. This index reads
each failure once, by `updated_at` (indexed), keeps only what the rule needs (uuid, first
seen time, task name, fingerprint and its description), and forgets what falls out of the
horizon. A new holder of the alerts lease starts empty and reads the horizon once.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from lookout.core.failures import fingerprint
from lookout.core.store.models import Task

# Rows committed out of order (a slow batch after a faster later one) carry an updated_at
# a little before the last one read: each refresh reads this far back again.
SLACK = 120.0


class FailureIndex:
    """uuid -> (timestamp, name, fingerprint key) of FAILURE tasks within `horizon`."""

    def __init__(self, max_failures: int):
        self.max_failures = max_failures
        self.horizon = 0.0
        self._failures: dict[str, tuple[float, str | None, dict[str, Any]]] = {}
        self._read_to: float | None = None  # highest updated_at read so far
        self.last_read = 0  # rows the last refresh fetched (a figure for tests and logs)

    def refresh(self, conn: Connection, now: float, horizon: float) -> None:
        """Read failures changed since the last refresh (all of `horizon` the first time,
        or when a rule asks for a longer one)."""
        if self._read_to is None or horizon > self.horizon:
            self._failures.clear()
            since = now - horizon
        else:
            since = self._read_to - SLACK
        self.horizon = max(self.horizon, horizon)
        rows = conn.execute(
            select(Task.uuid, Task.name, Task.exception, Task.traceback, Task.timestamp,
                   Task.updated_at)
            .where(Task.state == "FAILURE", Task.updated_at >= since)
            .order_by(Task.updated_at.desc()).limit(self.max_failures)).all()
        self.last_read = len(rows)
        for uuid, name, exception, traceback, timestamp, updated_at in rows:
            if uuid not in self._failures:
                self._failures[uuid] = (timestamp, name, fingerprint(exception, traceback))
            if self._read_to is None or updated_at > self._read_to:
                self._read_to = updated_at
        if self._read_to is None:
            self._read_to = now
        oldest = now - self.horizon
        stale = [uuid for uuid, (at, _n, _k) in self._failures.items() if at < oldest]
        for uuid in stale:
            del self._failures[uuid]
        if len(self._failures) > self.max_failures:  # keep the newest, as the scan did
            keep = sorted(self._failures.items(), key=lambda item: item[1][0])
            self._failures = dict(keep[-self.max_failures:])

    def since(self, start: float) -> list[tuple[str | None, dict[str, Any], float]]:
        """(name, fingerprint key, timestamp) of the failures first seen from `start` on."""
        return [(name, key, at) for at, name, key in self._failures.values() if at >= start]
