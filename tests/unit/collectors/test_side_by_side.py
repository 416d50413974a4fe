"""Collectors side by side on one PostgreSQL store write exactly one collector's rows.

Two writers run at once on separate connections, each fed its own shuffled order and
batch split: as a redundant Redis pair (both hear every event) and as competing RabbitMQ
consumers (the events split between them). Every table they write must equal what one
writer makes of the same events in their natural order: task rows (states, times,
counters), the timeline, per-minute rollups, worker rows and Prometheus totals.
"""
from __future__ import annotations

import json
import random
import threading

import pytest
from sqlalchemy import select

from helpers.event_factory import (T0, event, hard_time_limit, lifecycle, retried_by_celery,
                                   task)
from lookout.collectors.buffer import EventBuffer
from lookout.collectors.stats import CollectorStats
from lookout.collectors.writer import HistoryWriter
from lookout.core.config import Settings
from lookout.core.store import db
from lookout.core.store.models import MetricTotal, Task, TaskEvent, TaskRollup, Worker

RUNS = 6
# What each table is compared on: everything but surrogate ids.
TABLES = {Task: ("uuid",), TaskEvent: ("task_uuid", "type", "timestamp", "hostname"),
          TaskRollup: ("name", "bucket"), Worker: ("hostname",), MetricTotal: None}


def workload() -> list:
    """Lifecycles, failures, retries, hard time limits and heartbeats over two workers."""
    events = []
    for i in range(120):
        host = f"w{i % 2}@pair"
        t = T0 + i * 0.37
        if i % 7 == 0:
            events += [task("task-received", f"f{i}", t, host, name="proj.fail", args="()",
                            kwargs="{}", retries=0),
                       task("task-started", f"f{i}", t + 0.01, host),
                       task("task-failed", f"f{i}", t + 0.3, host,
                            exception="ValueError('boom')", traceback="Traceback ...")]
        elif i % 11 == 0:
            events += retried_by_celery(f"r{i}", t, host)
        elif i % 13 == 0:  # two task-failed for one task
            events += hard_time_limit(f"h{i}", t, host)
        else:
            events += lifecycle(f"t{i}", t, host, name=f"proj.job{i % 3}",
                                runtime=0.001 * (i + 1))
    for host in ("w0@pair", "w1@pair"):
        events += [event("worker-online", host, T0, local_received=T0 + 0.1, freq=2.0)]
        events += [event("worker-heartbeat", host, T0 + 2 * k, local_received=T0 + 2 * k + 0.1,
                         freq=2.0, active=k % 4, processed=10 * k) for k in range(1, 15)]
    return events


def writer(engine) -> HistoryWriter:
    settings = Settings(batch_size=500, retention=0, max_tasks=0, rollup_retention=0)
    return HistoryWriter(engine, EventBuffer(), settings, CollectorStats())


def snapshot(engine) -> dict:
    tables = {}
    with engine.connect() as conn:
        for model, key in TABLES.items():
            table = model.__table__
            columns = [c for c in table.columns if c.name != "id"]
            rows = [tuple(_exact(v) for v in r) for r in conn.execute(select(*columns))]
            tables[table.name] = sorted(rows, key=repr)
    tables["metric_totals"] = _without_task_names(tables["metric_totals"])
    return tables


def _without_task_names(rows) -> list:
    """The event counters, summed over the task-name label: every event counted once.

    Only these: the other Prometheus series label an event with what was known when it
    was written (task name, queue; a counter never moves between series), and a queue
    wait is observed only when the task's send was stored before its receipt. Events that
    arrive before what they need count under "" or not at all: an order effect that one
    writer shows as much as two (README: known limits).
    """
    totals: dict = {}
    for metric, labels, value in rows:
        if metric != "flower_events_total":
            continue
        labels = json.loads(labels)
        labels.pop("task", None)
        key = (metric, json.dumps(labels, sort_keys=True))
        totals[key] = totals.get(key, 0) + value
    return sorted(totals.items())


def _exact(value):
    """Sums of floats (runtime totals) differ in the last bit with the order they were
    added in, one writer or two: compared to 9 decimals, everything else exactly."""
    return round(value, 9) if isinstance(value, float) else value


def clear(engine) -> None:
    with engine.begin() as conn:
        for model in TABLES:
            conn.execute(model.__table__.delete())
        conn.exec_driver_sql("DELETE FROM metric_labels")


def batches(events: list, rng: random.Random) -> list[list]:
    order = events[:]
    rng.shuffle(order)
    out, start = [], 0
    while start < len(order):
        size = rng.randint(1, 120)
        out.append(order[start:start + size])
        start += size
    return out


def write_at_once(writers, feeds) -> None:
    errors = []
    start = threading.Barrier(len(writers))

    def run(one, feed):
        try:
            start.wait(10)
            for batch in feed:
                one.write_batch(batch)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair, name=f"side-by-side-{n}")
               for n, pair in enumerate(zip(writers, feeds))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []


@pytest.mark.parametrize("mode", ["redis pair", "competing consumers"])
def test_two_writers_at_once_write_exactly_one_writers_rows(pg_database_url, mode):
    events = workload()
    engines = [db.make_engine(pg_database_url) for _ in range(2)]
    try:
        clear(engines[0])
        writer(engines[0]).write_batch(events)
        expected = snapshot(engines[0])
        assert len(expected["tasks"]) == 120 and len(expected["workers"]) == 2

        for run in range(RUNS):
            rng = random.Random(f"{mode}-{run}")
            clear(engines[0])
            if mode == "redis pair":  # both hear everything, in their own order
                feeds = [batches(events, rng), batches(events, rng)]
            else:  # each message reaches one of them
                mine = [rng.random() < 0.5 for _ in events]
                feeds = [batches([e for e, m in zip(events, mine) if m], rng),
                         batches([e for e, m in zip(events, mine) if not m], rng)]
            writers = [writer(engine) for engine in engines]
            write_at_once(writers, feeds)
            got = snapshot(engines[0])
            for name in expected:
                assert got[name] == expected[name], f"run {run}: table {name} differs"
            # Each task event stored by exactly one of them; worker events have no timeline
            # (each writer folds its copy into the worker row, counted as stored by both).
            task_events = sum(1 for e in events if e.is_task)
            copies = 2 if mode == "redis pair" else 1
            stored = sum(w.stats.stored for w in writers)
            assert stored == task_events + copies * (len(events) - task_events), \
                f"run {run}: {stored} stored"
            duplicates = sum(w.stats.duplicates for w in writers)
            assert duplicates == (task_events if mode == "redis pair" else 0)
    finally:
        for engine in engines:
            engine.dispose()
