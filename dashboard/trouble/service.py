"""The trouble page's data: lost tasks (core/trouble.py) and stuck ones beside them.

Stuck uses the per-name p95 runtimes of the Overview's stats (cached), so the page costs
one query for the open tasks and one for their workers. The collector's stuck rule reads
the same minutes through the same merge (core.histogram.merge_by_name), uncached.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from sqlalchemy import Engine, select

from lookout.core.store.models import TaskLink

from lookout.core.trouble import (
    StuckRule,
    listening_since,
    lost_reason,
    open_tasks,
    workers_by_name,
)
from lookout.dashboard.history.query import TaskFilters, TaskQuery, parse_sort
from lookout.dashboard.history.service import list_item

USUAL_WINDOW = 86400.0
MAX_OPEN = 5000  # open tasks examined per look (oldest first)


class TroubleService:
    def __init__(self, engine: Engine, history, settings, clock: Callable[[], float] = time.time):
        self.engine, self.history, self.settings, self.clock = engine, history, settings, clock
        self.rule = StuckRule.from_settings(settings)

    def usual_runtimes(self) -> dict[str, float]:
        """p95 runtime per task name over the last day (cached with the stats)."""
        stats = self.history.rollups.stats(USUAL_WINDOW)
        return {t["name"]: t["runtime_p95"] for t in stats["tasks"] if t.get("runtime_p95")}

    def overview(self, limit: int = 200) -> dict[str, Any]:
        now = self.clock()
        lost = self.history.list_tasks(TaskQuery(
            filters=TaskFilters(lost=True), sort=parse_sort("-timestamp"), limit=limit))
        with self.engine.connect() as conn:
            rows = open_tasks(conn, MAX_OPEN)
            workers = workers_by_name(conn, [r["worker"] for r in rows])
            listening = listening_since(conn, now)
        usual = self.usual_runtimes()
        stuck = []
        for row in rows:
            if lost_reason(row, workers.get(row["worker"]), now, self.settings.lost_after,
                           listening=listening):
                continue
            reason = self.rule.reason(row, usual.get(row["name"] or ""), now)
            if reason:
                stuck.append({**list_item(row), "lost": None, "stuck": reason})
        lost_items = self._mark_handled(lost.items)
        return {"lost": lost_items, "lost_total": lost.total,
                "lost_handled": sum(1 for t in lost_items if t["handled"]),
                "stuck": stuck[:limit],
                "stuck_total": len(stuck), "examined": len(rows),
                # Silence counts only while someone listens (core/trouble.py): the page
                # says when it cannot, rather than showing no lost tasks as good news.
                "listening_since": listening,
                "silence_judged": listening is not None
                and listening <= now - self.settings.lost_after,
                "settings": {"lost_after": self.settings.lost_after,
                             "stuck_factor": self.rule.factor,
                             "stuck_min": self.rule.minimum,
                             "stuck_default": self.rule.default}}

    def _mark_handled(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A lost task stays lost till retention (no event will close it): one revoked or
        retried from Lookout says how it was dealt with, and comes after those that were
        not (a trial retried one, then found it still listed, undistinguished)."""
        uuids = [t["uuid"] for t in items]
        retried: dict[str, str] = {}
        if uuids:
            with self.engine.connect() as conn:
                for new, old in conn.execute(select(TaskLink.task_uuid, TaskLink.retry_of)
                                             .where(TaskLink.retry_of.in_(uuids))
                                             .order_by(TaskLink.created_at)):
                    retried[old] = new  # the newest retry
        for task in items:
            task["retried_as"] = retried.get(task["uuid"])
            task["handled"] = bool(task["retried_as"] or task.get("revoke_requested_at"))
        # Those the broker delivers again by itself need nobody either (core/trouble.py).
        return sorted(items, key=lambda t: t["handled"] or bool(t.get("redelivery")))

    def for_task(self, task: dict[str, Any]) -> str | None:
        """The stuck reason of one task (its detail has `lost` already)."""
        return self.rule.reason(task, self.usual_runtimes().get(task.get("name") or ""),
                                self.clock())
