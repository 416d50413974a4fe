"""Failures grouped by fingerprint (core/failures.py) over a time window.

Groups are computed from the failed task rows of the window (newest first, at most
MAX_ROWS), so they follow retention like the rest of the history; a cache keeps a busy
page from regrouping on every poll while no failure came or went.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable

from sqlalchemy import Engine, exists, func, select

from lookout.core.failures import fingerprint
from lookout.core.store.models import Task, TaskLink
from lookout.dashboard.web.cost_cache import CostCache

MAX_ROWS = 50_000
TOP = 10
COLUMNS = (Task.uuid, Task.name, Task.worker, Task.exception, Task.traceback, Task.timestamp,
           Task.failed_at,
           # Sent again from Lookout (a retry from a task page, bulk retry or Flower's
           # apply): still a failure that happened, but one somebody has dealt with.
           exists().where(TaskLink.retry_of == Task.uuid).label("retried"))


class FailureGroups:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time):
        self.engine, self.clock = engine, clock
        self.cache = CostCache()

    def groups(self, window: float) -> dict[str, Any]:
        """Cached per window and per (count, newest) of its failures: a new failure is on
        the page at its next reload (the live page asks when one arrives), and the check is
        one read of the (state, timestamp) index."""
        since = self.clock() - window
        # A retry sent since changes the groups' retried counts: task_links (small) is in
        # the marker too, read in the same statement.
        links = (select(func.count()).select_from(TaskLink).scalar_subquery(),
                 select(func.max(TaskLink.created_at)).scalar_subquery())
        with self.engine.connect() as conn:
            marker = tuple(conn.execute(
                select(func.count(), func.max(Task.timestamp), *links)
                .where(Task.state == "FAILURE", Task.timestamp >= since)).one())
        return self.cache.get_or_compute((window, marker), lambda: self._groups(window))

    def _groups(self, window: float) -> dict[str, Any]:
        now = self.clock()
        with self.engine.connect() as conn:
            rows = conn.execute(select(*COLUMNS)
                                .where(Task.state == "FAILURE", Task.timestamp >= now - window)
                                .order_by(Task.timestamp.desc()).limit(MAX_ROWS)).all()
        groups: dict[str, dict[str, Any]] = {}
        for row in rows:
            key = fingerprint(row.exception, row.traceback)
            at = row.failed_at or row.timestamp
            group = groups.get(key["fingerprint"])
            if group is None:
                group = groups[key["fingerprint"]] = {
                    **key, "count": 0, "retried": 0, "first_seen": at, "last_seen": at,
                    "task_names": Counter(), "workers": Counter(), "task_ids": [],
                    "retried_ids": [],
                    "sample": {"uuid": row.uuid, "name": row.name,
                               "exception": (row.exception or "")[:1000],
                               "traceback": (row.traceback or "")[-4000:]}}
            group["count"] += 1
            group["first_seen"] = min(group["first_seen"], at)
            group["last_seen"] = max(group["last_seen"], at)
            group["task_names"][row.name or "(unknown)"] += 1
            group["workers"][row.worker or "(unknown)"] += 1
            group["retried"] += bool(row.retried)
            if len(group["task_ids"]) < 50:
                group["task_ids"].append(row.uuid)
                if row.retried:
                    group["retried_ids"].append(row.uuid)
        ordered = sorted(groups.values(), key=lambda g: (-g["count"], -g["last_seen"]))
        for group in ordered:
            group["task_names"] = _top(group["task_names"])
            group["workers"] = _top(group["workers"])
        return {"window": window, "since": now - window, "failures": len(rows),
                "retried": sum(bool(row.retried) for row in rows),
                "capped": len(rows) >= MAX_ROWS, "groups": ordered}

    def task_ids(self, key: str, window: float, limit: int) -> list[str]:
        """The failures of group `key` in the window, newest first, at most `limit`: what
        a bulk retry of one group sends (the group's own `task_ids` stop at 50)."""
        now = self.clock()
        found: list[str] = []
        with self.engine.connect() as conn:
            rows = conn.execute(select(Task.uuid, Task.exception, Task.traceback)
                                .where(Task.state == "FAILURE", Task.timestamp >= now - window)
                                .order_by(Task.timestamp.desc()).limit(MAX_ROWS))
            for row in rows:
                if fingerprint(row.exception, row.traceback)["fingerprint"] == key:
                    found.append(row.uuid)
                    if len(found) >= limit:
                        break
        return found

    def group(self, key: str, window: float) -> dict[str, Any] | None:
        return next((g for g in self.groups(window)["groups"] if g["fingerprint"] == key),
                    None)


def _top(counter: Counter) -> list[dict[str, Any]]:
    return [{"name": name, "count": count} for name, count in counter.most_common(TOP)] + (
        [{"name": f"{len(counter) - TOP} more", "count": sum(
            c for _, c in counter.most_common()[TOP:])}] if len(counter) > TOP else [])
