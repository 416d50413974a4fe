"""Pruner against real stores: by age, by row count, in bounded steps."""
from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from helpers.event_factory import T0, lifecycle, task
from lookout.collectors.buffer import EventBuffer
from lookout.collectors.retention import Pruner
from lookout.collectors.stats import CollectorStats
from lookout.collectors.writer import HistoryWriter
from lookout.core.config import Settings
from lookout.core.store import db
from lookout.core.store.models import QueueSample, RevokeRequest, Task, TaskEvent, TaskRollup

DAY = 86400.0
NOW = T0 + 200 * DAY


@pytest.fixture
def store(database_url):
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


def settings(**changes):
    return Settings(retention=7 * DAY, max_tasks=0, rollup_retention=90 * DAY).replace(**changes)


def write_tasks(engine, ages_in_days, prefix="t"):
    """One finished task per age; its events were received (and stamped) that long ago."""
    writer = HistoryWriter(engine, EventBuffer(), settings(), CollectorStats())
    for i, age in enumerate(ages_in_days):
        when = NOW - age * DAY
        events = [e._replace(local_received=e.timestamp)
                  for e in lifecycle(f"{prefix}{i}", when + i * 0.001)]
        writer.write_batch(events)


def uuids(engine):
    with engine.connect() as conn:
        return sorted(conn.execute(select(Task.__table__.c.uuid)).scalars())


def count(engine, model, **where):
    table = model.__table__
    query = select(func.count()).select_from(table)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def prune_all(pruner, now=NOW):
    steps = []
    while (deleted := pruner.prune_step(now)) and len(steps) < 1000:
        steps.append(deleted)
    return steps


def test_age_removes_old_tasks_and_timelines_but_keeps_rollups(store):
    write_tasks(store, [30, 10, 8, 2, 0.5])  # days ago
    assert count(store, TaskRollup) == 5
    steps = prune_all(Pruner(store, settings()))
    assert steps and sum(steps) == 3 * 5  # three tasks, four timeline rows each
    assert uuids(store) == ["t3", "t4"]
    assert count(store, TaskEvent) == 8
    assert count(store, TaskRollup) == 5  # 90 days of rollups: all still wanted


def test_rollups_and_queue_samples_expire_later(store):
    write_tasks(store, [120, 60, 1])
    with store.begin() as conn:
        conn.execute(insert(QueueSample.__table__), [
            {"queue": "celery", "timestamp": NOW - age * DAY, "messages": 3}
            for age in (100, 91, 89, 1)])
    prune_all(Pruner(store, settings()))
    assert uuids(store) == ["t2"]
    with store.connect() as conn:
        buckets = conn.execute(select(TaskRollup.__table__.c.bucket)).scalars().all()
        samples = conn.execute(select(QueueSample.__table__.c.timestamp)).scalars().all()
    assert len(buckets) == 2 and min(buckets) >= NOW - 90 * DAY
    assert sorted(samples) == [NOW - 89 * DAY, NOW - DAY]


def test_row_cap_removes_the_oldest_tasks_first(store):
    write_tasks(store, [6, 5, 4, 3, 2, 1, 0.5, 0.1])
    pruner = Pruner(store, settings(max_tasks=5, retention=0))
    prune_all(pruner)
    assert uuids(store) == ["t3", "t4", "t5", "t6", "t7"]
    assert count(store, TaskEvent) == 20
    assert pruner.prune_step(NOW) == 0  # under the cap: nothing more to do


def test_each_step_is_bounded(store):
    write_tasks(store, [20] * 12)
    pruner = Pruner(store, settings(), limit=10)
    steps = prune_all(pruner)
    assert len(steps) > 1 and all(step <= 10 for step in steps)
    assert uuids(store) == []


def test_orphan_timeline_rows_are_removed(store):
    writer = HistoryWriter(store, EventBuffer(), settings(), CollectorStats())
    writer.write_batch(lifecycle("kept", NOW - 3600))
    with store.begin() as conn:
        conn.execute(insert(TaskEvent.__table__), [
            {"task_uuid": "gone", "type": "task-started", "hostname": "w1@a",
             "timestamp": NOW - 20 * DAY, "local_received": NOW - 20 * DAY, "clock": 1}])
    assert count(store, TaskEvent, task_uuid="gone") == 1
    prune_all(Pruner(store, settings()))
    assert count(store, TaskEvent, task_uuid="gone") == 0
    assert count(store, TaskEvent, task_uuid="kept") == 4


def test_revoke_requests_expire_with_the_history(store):
    with store.begin() as conn:
        conn.execute(insert(RevokeRequest.__table__), [
            {"task_uuid": f"r{age}", "requested_at": NOW - age * DAY} for age in (30, 8, 1)])
    prune_all(Pruner(store, settings()))
    with store.connect() as conn:
        assert conn.execute(select(RevokeRequest.__table__.c.task_uuid)).scalars().all() == ["r1"]


def test_nothing_due_deletes_nothing(store):
    write_tasks(store, [1, 2])
    HistoryWriter(store, EventBuffer(), settings(), CollectorStats()).write_batch(
        [task("task-started", "only-started", NOW - 10)])
    assert Pruner(store, settings()).prune_step(NOW) == 0
    assert len(uuids(store)) == 3
