"""Planner statistics for SQLite stores: `ANALYZE tasks` whenever the table has grown or
shrunk a lot since the last time.

SQLite keeps no statistics unless someone runs ANALYZE, and without them it takes an
equality on any index to match about ten rows. Measured at 1M tasks with
benchmarks/query.py (whose figures had all been taken on an analyzed store, unlike any
store Lookout made): `state=FAILURE&state=RETRY` sorted its 120,000 matches (230 ms, not
10), `name=job_1*` 420 ms instead of 10, `q=u4321&state=SUCCESS` read every success
(480 ms instead of 30). PostgreSQL's autovacuum keeps its statistics itself.

ANALYZE of a 1M-task table takes about 1.5 s, during which the writer waits (the backlog
absorbs it). So it runs only when `tasks` holds MIN_ROWS or more and has no statistics yet
or has doubled or halved since; the size is looked at every `check_every` seconds, between
batches, by the collector holding the retention lease. Web processes read the new
statistics on their next connection (store.db.make_engine recycles SQLite connections).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from sqlalchemy import Engine, func, select, text

from lookout.core.store.models import Task

log = logging.getLogger(__name__)

MIN_ROWS = 10_000  # below this every plan is fast, and statistics of a tiny table mislead


class PlannerStatistics:
    def __init__(self, engine: Engine, check_every: float = 600.0,
                 clock: Callable[[], float] = time.monotonic, min_rows: int = MIN_ROWS):
        self.engine, self.check_every, self.clock = engine, check_every, clock
        self.min_rows = min_rows
        self._checked: float | None = None

    def refresh_if_due(self) -> bool:
        """ANALYZE `tasks` if due (see the module doc); True when it ran."""
        if self.engine.dialect.name != "sqlite":
            return False
        now = self.clock()
        if self._checked is not None and now - self._checked < self.check_every:
            return False
        self._checked = now
        with self.engine.connect() as conn:
            rows = conn.scalar(select(func.count()).select_from(Task.__table__))
            analyzed = analyzed_rows(conn)
        if rows < self.min_rows or (analyzed is not None and analyzed / 2 <= rows <= analyzed * 2):
            return False
        started = time.monotonic()
        with self.engine.begin() as conn:
            conn.execute(text("ANALYZE tasks"))
        log.info("planner statistics of %d tasks refreshed in %.1fs (last: %s rows)", rows,
                 time.monotonic() - started, analyzed)
        return True


def analyzed_rows(conn) -> int | None:
    """How many tasks the last ANALYZE counted (None: never analyzed)."""
    exists = conn.scalar(text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"))
    if not exists:
        return None
    # An index over every row (a partial index's entry counts only its own rows).
    stat = conn.scalar(text("SELECT stat FROM sqlite_stat1 WHERE tbl = 'tasks' "
                            "AND idx = 'ix_tasks_timestamp'"))
    return int(stat.split()[0]) if stat else None
