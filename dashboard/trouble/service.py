"""Stuck tasks beside lost ones: open far longer than their name usually runs.

Lost (core/trouble.py) is about the worker: it died. Stuck is about the task: RECEIVED or
STARTED for longer than `stuck_factor` times its name's p95 runtime over the last day
(from the rollups), never less than `stuck_min`; a name with no runtime history yet gets
`stuck_default`. A task waiting for its ETA is not stuck, and a lost task is listed as
lost only.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import Engine, select

from lookout.core.store.models import Task
from lookout.core.trouble import OPEN_STATES, lost_reason, workers_by_name
from lookout.dashboard.history.query import TaskFilters, TaskQuery, parse_sort
from lookout.dashboard.history.service import list_item
from lookout.dashboard.history.task_sql import list_columns

USUAL_WINDOW = 86400.0
MAX_OPEN = 5000  # open tasks examined per look (oldest first)


def eta_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


class TroubleService:
    def __init__(self, engine: Engine, history, settings, clock: Callable[[], float] = time.time):
        self.engine, self.history, self.settings, self.clock = engine, history, settings, clock

    def usual_runtimes(self) -> dict[str, float]:
        """p95 runtime per task name over the last day (cached with the stats)."""
        stats = self.history.rollups.stats(USUAL_WINDOW)
        return {t["name"]: t["runtime_p95"] for t in stats["tasks"] if t.get("runtime_p95")}

    def stuck_limit(self, name: str | None, usual: dict[str, float]) -> tuple[float, str]:
        p95 = usual.get(name or "")
        if p95 is None:
            return self.settings.stuck_default, "no runtime history for this name yet"
        limit = max(self.settings.stuck_min, self.settings.stuck_factor * p95)
        return limit, f"{self.settings.stuck_factor:g} x its p95 runtime of {p95:.3g} s"

    def stuck_reason(self, task: dict[str, Any], usual: dict[str, float], now: float) -> str | None:
        if task["state"] not in OPEN_STATES:
            return None
        eta = eta_time(task.get("eta"))
        if eta is not None and eta > now:
            return None  # waiting for its ETA, as asked
        since = task.get("started_at") or task.get("received_at")
        if since is None:
            return None
        limit, basis = self.stuck_limit(task.get("name"), usual)
        open_for = now - since
        if open_for <= limit:
            return None
        verb = "running" if task["state"] == "STARTED" else "received and not started"
        return f"{verb} for {open_for:.0f} s, over {limit:.0f} s ({basis})"

    def overview(self, limit: int = 200) -> dict[str, Any]:
        now = self.clock()
        lost = self.history.list_tasks(TaskQuery(
            filters=TaskFilters(lost=True), sort=parse_sort("-timestamp"), limit=limit))
        with self.engine.connect() as conn:
            rows = conn.execute(select(*list_columns()).where(Task.state.in_(OPEN_STATES))
                                .order_by(Task.timestamp, Task.uuid)
                                .limit(MAX_OPEN)).mappings().all()
            workers = workers_by_name(conn, [r["worker"] for r in rows])
        usual = self.usual_runtimes()
        stuck = []
        for row in rows:
            if lost_reason(row, workers.get(row["worker"]), now, self.settings.lost_after):
                continue
            reason = self.stuck_reason(row, usual, now)
            if reason:
                stuck.append({**list_item(row), "lost": None, "stuck": reason})
        return {"lost": lost.items, "lost_total": lost.total, "stuck": stuck[:limit],
                "stuck_total": len(stuck), "examined": len(rows),
                "settings": {"lost_after": self.settings.lost_after,
                             "stuck_factor": self.settings.stuck_factor,
                             "stuck_min": self.settings.stuck_min,
                             "stuck_default": self.settings.stuck_default}}

    def for_task(self, task: dict[str, Any]) -> str | None:
        """The stuck reason of one task (its detail has `lost` already)."""
        return self.stuck_reason(task, self.usual_runtimes(), self.clock())
