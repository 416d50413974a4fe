"""The collector's planner statistics for SQLite stores (planner_statistics.py), on a real
SQLite store: taken once the task table is big enough, again only when it has doubled or
halved, and what they change: a connection opened afterwards plans a two-state list by
walking the time index instead of sorting every match."""
from __future__ import annotations

from sqlalchemy import delete, text

from helpers.factories import T0, add_tasks
from lookout.collectors.planner_statistics import PlannerStatistics, analyzed_rows
from lookout.core.store import db as store_db
from lookout.core.store.models import Task

# The collector's threshold is 10,000 tasks; a tenth shows the same with a tenth of the
# rows to write (the test took 16 s).
MIN_ROWS = 1_000
TWO_STATES = ("EXPLAIN QUERY PLAN SELECT uuid FROM tasks WHERE state IN ('FAILURE', 'RETRY')"
              " ORDER BY timestamp DESC LIMIT 51")


def fill(engine, count: int, start: float = T0) -> None:
    for i, state in enumerate(("SUCCESS", "FAILURE", "RETRY")):
        add_tasks(engine, count // 3, start=start + i, step=3.0, state=state)


def plan(engine) -> str:
    with engine.connect() as conn:
        return " | ".join(row[-1] for row in conn.exec_driver_sql(TWO_STATES))


def test_statistics_follow_the_size_of_the_task_table(sqlite_url):
    engine = store_db.make_engine(sqlite_url)
    try:
        statistics = PlannerStatistics(engine, check_every=0.0, min_rows=MIN_ROWS)
        fill(engine, MIN_ROWS // 2)
        assert not statistics.refresh_if_due()  # too small to matter
        fill(engine, MIN_ROWS, start=T0 + 10**6)
        assert "TEMP B-TREE" in plan(engine)  # no statistics: every failure and retry sorted

        assert statistics.refresh_if_due()
        with engine.connect() as conn:
            assert analyzed_rows(conn) == MIN_ROWS // 2 // 3 * 3 + MIN_ROWS // 3 * 3
        engine.dispose()  # a new connection reads them (the pool recycles SQLite's)
        assert plan(engine) == "SCAN tasks USING INDEX ix_tasks_timestamp"

        assert not statistics.refresh_if_due()  # same size
        fill(engine, 3 * MIN_ROWS, start=T0 + 2 * 10**6)
        assert statistics.refresh_if_due()  # more than doubled
        with engine.begin() as conn:
            conn.execute(delete(Task).where(Task.timestamp >= T0 + 2 * 10**6))
        assert statistics.refresh_if_due()  # less than half left
        with engine.connect() as conn:
            assert analyzed_rows(conn) == conn.scalar(text("SELECT count(*) FROM tasks"))
    finally:
        engine.dispose()


def test_throttled_between_checks(sqlite_url):
    now = [0.0]
    engine = store_db.make_engine(sqlite_url)
    try:
        statistics = PlannerStatistics(engine, check_every=600.0, clock=lambda: now[0],
                                       min_rows=MIN_ROWS)
        assert not statistics.refresh_if_due()  # looked: empty
        fill(engine, MIN_ROWS * 2)
        now[0] = 599.0
        assert not statistics.refresh_if_due()  # not looked again yet
        now[0] = 601.0
        assert statistics.refresh_if_due()
    finally:
        engine.dispose()
