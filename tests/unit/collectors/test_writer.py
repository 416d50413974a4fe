"""HistoryWriter against real SQLite and PostgreSQL stores."""
from __future__ import annotations

import json
import random
import sqlite3
import threading
import time

import pytest
from sqlalchemy import func, select

from helpers.event_factory import T0, event, hard_time_limit, lifecycle, task
from helpers.support import wait_for
from lookout.core import histogram
from lookout.collectors.buffer import EventBuffer
from lookout.collectors.stats import CollectorStats
from lookout.collectors.writer import HistoryWriter
from lookout.core.config import Settings
from lookout.core.store import db
from lookout.core.store.models import MetricTotal, Task, TaskEvent, TaskRollup, Worker

MINUTE = int(T0 // 60) * 60


@pytest.fixture
def store(database_url):
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


def make_writer(engine, **kwargs):
    # Events here carry 2023 times: retention off, or the pruner would eat them.
    settings = Settings(batch_size=500, flush_interval=0.05, reconnect_max_backoff=0.5,
                        retention=0, max_tasks=0, rollup_retention=0)
    return HistoryWriter(engine, EventBuffer(), settings, CollectorStats(), **kwargs)


def rows(engine, model, order=None):
    table = model.__table__
    query = select(table)
    if order is not None:
        query = query.order_by(table.c[order])
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def count(engine, model):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model.__table__)).scalar_one()


def worker_events(host="w1@a"):
    return [
        event("worker-online", host, T0, local_received=T0 + 0.1, freq=2.0),
        event("worker-heartbeat", host, T0 + 2, local_received=T0 + 2.1, freq=2.0,
              active=3, processed=10, loadavg=[0.5, 0.4, 0.3], sw_ident="py-celery",
              sw_ver="5.7.0", sw_sys="Linux"),
        event("worker-heartbeat", host, T0 + 4, local_received=T0 + 4.1, freq=2.0,
              active=1, processed=12),
    ]


def test_batch_fills_every_table(store):
    writer = make_writer(store)
    events = (lifecycle("a", T0, "w1@a", runtime=0.5) + lifecycle("b", T0 + 1, "w2@a")
              + worker_events())
    summary = writer.write_batch(events)

    tasks = {r["uuid"]: r for r in rows(store, Task)}
    assert tasks["a"]["state"] == "SUCCESS" and tasks["a"]["worker"] == "w1@a"
    assert tasks["a"]["name"] == "proj.add" and tasks["a"]["runtime"] == 0.5
    assert tasks["b"]["queue"] == "celery"
    assert count(store, TaskEvent) == 8
    [worker] = rows(store, Worker)
    assert worker["online"] and worker["last_heartbeat"] == T0 + 4.1
    assert worker["first_seen"] == T0 + 0.1 and worker["processed"] == 12
    assert json.loads(worker["loadavg"]) == [0.5, 0.4, 0.3]  # kept from the earlier beat
    [rollup] = rows(store, TaskRollup)
    assert (rollup["name"], rollup["bucket"]) == ("proj.add", MINUTE)
    assert (rollup["received"], rollup["started"], rollup["succeeded"]) == (2, 2, 2)
    assert rollup["runtime_count"] == 2 and rollup["runtime_sum"] == pytest.approx(0.7)
    assert sum(histogram.loads(rollup["runtime_hist"]).values()) == 2
    assert summary.stored == 11 and summary.duplicates == 0
    assert summary.states["SUCCESS"] == 2 and len(summary.tasks) == 2
    assert [w["hostname"] for w in summary.workers] == ["w1@a"]
    assert writer.stats.stored == 11


def test_duplicates_never_count_twice(store):
    writer = make_writer(store)
    events = lifecycle("a", T0, runtime=0.5)
    writer.write_batch(events + events[:2])  # copies inside the batch
    writer.write_batch(events)  # and the whole batch again
    second = writer.write_batch(list(reversed(events)))
    assert second.stored == 0 and second.duplicates == 4 and second.tasks == []
    assert writer.stats.duplicates == 2 + 4 + 4
    assert count(store, TaskEvent) == 4
    [rollup] = rows(store, TaskRollup)
    assert (rollup["received"], rollup["succeeded"], rollup["runtime_count"]) == (1, 1, 1)


def test_rows_merge_across_batches_in_any_order(store):
    writer = make_writer(store)
    sent, received, started, succeeded = lifecycle("a", T0, runtime=0.25)
    writer.write_batch([started, succeeded])
    late_retry = task("task-retried", "a", T0 + 9, "w1@a", exception="Late()")
    writer.write_batch([late_retry, received])
    writer.write_batch([sent])
    [row] = rows(store, Task)
    assert row["state"] == "SUCCESS" and row["name"] == "proj.add"
    assert row["timestamp"] == T0 and row["retries"] == 1 and row["retried_at"] == T0 + 9
    counts = {r["name"]: r for r in rows(store, TaskRollup)}
    # Counted under "" until task-received brought the name, then moved to it.
    assert set(counts) == {"proj.add"}
    assert counts["proj.add"]["started"] == 1 and counts["proj.add"]["succeeded"] == 1
    assert counts["proj.add"]["received"] == 1 and counts["proj.add"]["retried"] == 1


def test_worker_offline_then_back(store):
    writer = make_writer(store)
    writer.write_batch(worker_events() + [
        event("worker-offline", "w1@a", T0 + 5, local_received=T0 + 5.1)])
    assert rows(store, Worker)[0]["online"] is False
    writer.write_batch([event("worker-heartbeat", "w1@a", T0 + 9, local_received=T0 + 9.1,
                              freq=2.0, active=0)])
    [worker] = rows(store, Worker)
    assert worker["online"] is True and worker["last_heartbeat"] == T0 + 9.1


def test_poisonous_event_costs_only_itself(store):
    writer = make_writer(store)
    # Validation refuses these numbers now (test_events.py); the writer must still cope
    # with whatever the database refuses, so they are forced past it here.
    poison = task("task-received", "bad", T0, "w1@a", name="proj.add")
    poison = poison._replace(fields={**poison.fields, "retries": 2 ** 70})
    bad_worker = event("worker-heartbeat", "w9@a", T0, active=1)
    bad_worker = bad_worker._replace(fields={**bad_worker.fields, "active": 2 ** 70})
    huge_clock = [e._replace(clock=2 ** 40) for e in lifecycle("b", T0 + 1)]  # must fit
    events = lifecycle("a", T0) + [poison, bad_worker] + huge_clock
    summary = writer.write_batch(events)
    assert summary.dropped == 2 and writer.stats.dropped == 2
    assert sorted(r["uuid"] for r in rows(store, Task)) == ["a", "b"]
    assert count(store, TaskEvent) == 8
    assert rows(store, TaskRollup)[0]["succeeded"] == 2


def test_thread_drains_buffer_and_acks_on_commit(store):
    acked, summaries = [], []
    writer = make_writer(store, on_commit=acked.extend, listeners=[summaries.append])
    writer.start()
    assert "lookout-writer" in [t.name for t in threading.enumerate()]
    for i in range(30):
        writer.buffer.put(lifecycle(f"t{i}", T0 + i), token=i)
    wait_for(lambda: count(store, Task) >= 10, message="first batches written")
    for i in range(30, 60):
        writer.buffer.put(lifecycle(f"t{i}", T0 + i), token=i)
    writer.buffer.put([], token="empty")  # a token alone is still acked
    assert writer.stop(timeout=10)
    assert "lookout-writer" not in [t.name for t in threading.enumerate()]
    assert count(store, Task) == 60 and count(store, TaskEvent) == 240
    assert sorted(acked, key=str) == sorted([*range(60), "empty"], key=str)
    assert sum(s.states["SUCCESS"] for s in summaries) == 60
    assert writer.stats.stored == 240 and writer.stats.write_lag > 0


def test_batch_kept_while_the_store_is_unusable(tmp_path):
    """No tables yet (as if the database were away): the batch waits, then is written."""
    url = f"sqlite:///{tmp_path / 'late.db'}"
    engine = db.make_engine(url)
    writer = make_writer(engine)
    writer.start()
    try:
        writer.buffer.put(lifecycle("a", T0), token="t")
        wait_for(lambda: writer.stats.last_write_error, message="a failed write")
        assert count_or_none(engine) is None
        db.upgrade(url)
        wait_for(lambda: writer.stats.last_write_error is None and count_or_none(engine) == 1,
                 message="the kept batch written")
    finally:
        assert writer.stop(timeout=10)
        engine.dispose()
    assert writer.stats.stored == 4 and writer.stats.dropped == 0


def count_or_none(engine):
    try:
        return count(engine, Task)
    except Exception:  # noqa: BLE001 - no table yet
        return None


def test_stop_gives_up_on_an_unusable_store_without_leaking(tmp_path):
    """At the deadline the unwritten batch goes back to the buffer, still marked as the
    broker's to redeliver (its token stays unacked); nothing is silently dropped."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'never.db'}")  # never migrated
    writer = make_writer(engine)
    writer.start()
    writer.buffer.put(lifecycle("a", T0), token="t")
    wait_for(lambda: writer.stats.last_write_error, message="a failed write")
    assert writer.stop(timeout=1.0) is False
    assert "lookout-writer" not in [t.name for t in threading.enumerate()]
    assert writer.stats.dropped == 0 and writer.stats.stored == 0
    assert len(writer.buffer) == 4
    assert writer.buffer.keep_rest() == (0, 4, 0)  # (spilled, redelivered, lost)
    engine.dispose()


def test_listener_and_ack_failures_do_not_undo_the_commit(store):
    def broken(_):
        raise RuntimeError("listener down")

    writer = make_writer(store, on_commit=broken, listeners=[broken])
    summary = writer.write_batch(lifecycle("a", T0), tokens=["t"])
    assert summary.stored == 4 and count(store, Task) == 1


def test_two_writers_racing_on_the_same_events_count_them_once(database_url):
    """Two collectors on one store (e.g. a redelivery race): the timeline key decides."""
    events = [e for i in range(300) for e in lifecycle(f"r{i}", T0 + i, runtime=0.1)]
    engines = [db.make_engine(database_url) for _ in range(2)]
    writers = [make_writer(engine) for engine in engines]
    errors = []

    def run(writer, order):
        try:
            for start in range(0, len(order), 200):
                writer.write_batch(order[start:start + 200])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(writers[0], events), name="race-a"),
               threading.Thread(target=run, args=(writers[1], events[::-1]), name="race-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(w.stats.stored for w in writers) == 1200
    assert sum(w.stats.duplicates for w in writers) == 1200
    engine = engines[0]
    assert count(engine, TaskEvent) == 1200 and count(engine, Task) == 300
    rollups = rows(engine, TaskRollup)
    assert [sum(r[c] for r in rollups) for c in ("received", "succeeded", "runtime_count")] \
        == [300, 300, 300]
    assert {r["state"] for r in rows(engine, Task)} == {"SUCCESS"}
    for engine in engines:
        engine.dispose()


def test_nul_characters_in_fields_are_stored(store):
    """PostgreSQL text refuses NUL; the validator escapes it so the event is kept."""
    from lookout.collectors.events import validate

    raw = {"type": "task-received", "hostname": "w@h", "timestamp": T0, "clock": 1,
           "uuid": "nul-task", "name": "proj.nul", "args": "('\x00',)", "kwargs": "{}"}
    make_writer(store).write_batch([validate(raw, T0, 1000)])
    stored = [r for r in rows(store, Task) if r["uuid"] == "nul-task"]
    assert stored and stored[0]["args"] == "('\\x00',)"


def test_counts_move_to_the_name_when_it_arrives_late(store):
    """Started/succeeded before received: nothing stays filed under a nameless row."""
    events = lifecycle("late-name", T0, runtime=0.5)
    sent, received, started, succeeded = events
    writer = make_writer(store)
    writer.write_batch([started, succeeded])
    assert {r["name"] for r in rows(store, TaskRollup)} == {""}
    writer.write_batch([received, sent])
    writer.write_batch([succeeded])  # a duplicate changes nothing
    rollups = rows(store, TaskRollup)
    assert [r["name"] for r in rollups] == ["proj.add"]
    (row,) = rollups
    assert (row["received"], row["started"], row["succeeded"]) == (1, 1, 1)
    assert row["runtime_count"] == 1 and abs(row["runtime_sum"] - 0.5) < 1e-9
    assert sum(histogram.loads(row["runtime_hist"]).values()) == 1


def test_timeline_statements_come_in_few_sizes_that_cover_every_row():
    """Each distinct VALUES size stays prepared in SQLite's statement cache (megabytes
    for thousands of rows): batch remainders must not each add one."""
    from lookout.collectors.task_writer import SQLITE_ROWS_PER_INSERT, _statement_sizes

    sizes: set[int] = set()
    for count in range(3 * SQLITE_ROWS_PER_INSERT):
        parts = list(_statement_sizes(count))
        assert sum(parts) == count
        sizes.update(parts)
    assert len(sizes) <= 13


def test_row_statements_come_in_few_sizes_that_cover_every_row():
    from lookout.collectors.sql_rows import ROWS_PER_STATEMENT, statement_sizes

    sizes: set[int] = set()
    for count in range(3 * ROWS_PER_STATEMENT):
        parts = list(statement_sizes(count))
        assert sum(parts) == count
        sizes.update(parts)
    assert len(sizes) <= ROWS_PER_STATEMENT.bit_length()


def test_multi_row_writes_store_what_the_executemany_reference_stores(tmp_path, monkeypatch):
    """write_rows on SQLite (multi-row INSERT and UPDATE ... FROM VALUES, the hot path)
    against the executemany it replaced: same rows, same text index, for row counts
    around each statement size and values of every column type."""
    from helpers.factories import task_row
    from lookout.collectors import sql_rows

    table = Task.__table__
    batches = []
    for n, count in enumerate((1, 3, 127, 128, 129, 300)):
        rows = [task_row(uuid=f"b{n}-{i:04d}", args=f"('ärger-{i}',)", expired=(i % 3 == 0)
                         if i % 2 else None, runtime=i / 7 or None) for i in range(count)]
        changed = [{**row, "name": "proj.b", "state": "FAILURE", "retries": i,
                    "exception": f"KeyError('k{i}')", "args": row["args"] if i % 4 else None}
                   for i, row in enumerate(rows) if i % 2 == 0]
        batches.append((rows, changed))
    stored = []
    for multi_row in (True, False):
        monkeypatch.setattr(sql_rows, "SQLITE_MULTI_ROW", multi_row)
        url = f"sqlite:///{tmp_path / f'multi-{multi_row}.db'}"
        db.upgrade(url)
        engine = db.make_engine(url)
        for rows, changed in batches:
            with engine.begin() as conn:
                sql_rows.write_rows(conn, table, ("uuid",), rows, [])
            with engine.begin() as conn:
                sql_rows.write_rows(conn, table, ("uuid",), [], changed)
        with engine.connect() as conn:
            stored.append((
                [tuple(r) for r in conn.execute(select(table).order_by(table.c.uuid))],
                conn.exec_driver_sql("SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH "
                                     "'\"ÄRGER-1\" OR keyerror' ORDER BY 1").scalars().all()))
        engine.dispose()
    assert stored[0] == stored[1] and len(stored[0][0]) == 688 and stored[0][1]


def test_an_update_limited_to_columns_writes_only_those(store):
    """save_tasks updates only a row's changed columns (index upkeep): the others keep
    what is stored even when the row handed over says otherwise."""
    from helpers.factories import task_row
    from lookout.collectors import sql_rows

    table = Task.__table__
    written = [task_row(uuid=f"c{i}", args="(1,)", state="STARTED") for i in range(3)]
    with store.begin() as conn:
        sql_rows.write_rows(conn, table, ("uuid",), written, [])
    changed = [{**row, "state": "SUCCESS", "args": "(2,)"} for row in written[:2]]
    with store.begin() as conn:
        sql_rows.write_rows(conn, table, ("uuid",), [], changed, ("state",))
    stored = {r["uuid"]: (r["state"], r["args"]) for r in rows(store, Task)}
    assert stored == {"c0": ("SUCCESS", "(1,)"), "c1": ("SUCCESS", "(1,)"),
                      "c2": ("STARTED", "(1,)")}


def test_a_refused_batch_is_bisected_not_written_event_by_event(store):
    """One poison event in 2,000: a few dozen transactions, every other event stored."""
    writer = make_writer(store)
    events = [e for i in range(500) for e in lifecycle(f"t{i}", T0 + i)]
    poison = task("task-received", "bad", T0, "w1@a", name="proj.add")
    events.insert(1234, poison._replace(fields={**poison.fields, "retries": 2 ** 70}))
    calls = []
    write_once = writer._write_once
    writer._write_once = lambda part: calls.append(len(part)) or write_once(part)
    summary = writer.write_batch(events)
    assert summary.dropped == 1 and summary.stored == 2000
    assert count(store, Task) == 500 and count(store, TaskEvent) == 2000
    assert len(calls) <= 2 * 11 + 1, len(calls)  # log2(2001) < 11


def test_a_hard_time_limit_is_one_failure_in_any_order_and_split(store):
    """Celery sends task-failed twice for one hard time limit (the pool's, then
    on_timeout's): the task counts once as failed, in the minute of the later event,
    whatever the order and batches; the row shows the real exception, not the wrapper."""
    start = MINUTE + 120 + 58.989  # the two task-failed straddle a minute: :59.999, :00.002
    writer = make_writer(store)
    for seed in range(8):
        rng = random.Random(seed)
        events = hard_time_limit(f"tl{seed}", start, name=f"proj.slow{seed}")
        rng.shuffle(events)
        cut = sorted(rng.sample(range(1, len(events)), rng.randint(0, 3)))
        for low, high in zip([0, *cut], [*cut, len(events)]):
            writer.write_batch(events[low:high])
        writer.write_batch(events[:2])  # copies change nothing
        [row] = [r for r in rows(store, Task) if r["uuid"] == f"tl{seed}"]
        assert (row["state"], row["exception"]) == ("FAILURE", "TimeLimitExceeded(1,)")
        assert "on_timeout" in row["traceback"]  # the later event's, as for any field
        counts = {r["bucket"]: r for r in rows(store, TaskRollup)
                  if r["name"] == f"proj.slow{seed}"}
        assert {bucket: r["failed"] for bucket, r in counts.items() if r["failed"]} == \
            {MINUTE + 180: 1}, seed
        assert sum(r["received"] + r["started"] for r in counts.values()) == 2
        assert {r["name"] for r in rows(store, TaskRollup)} >= {f"proj.slow{seed}"}
        assert "" not in {r["name"] for r in rows(store, TaskRollup)}
    totals = {}
    for r in rows(store, MetricTotal):
        labels = json.loads(r["labels"])
        key = (r["metric"], labels.get("type"), labels.get("exception"))
        totals[key] = totals.get(key, 0) + r["value"]
    assert totals[("celery_task_failed_total", None, "TimeLimitExceeded")] == 8
    assert ("celery_task_failed_total", None, "ExceptionWithTraceback") not in totals
    assert totals[("flower_events_total", "task-failed", None)] == 16  # Flower counts events


def test_a_stalled_store_shows_as_a_growing_write_lag(tmp_path):
    """A write that hangs (here: another connection holds SQLite's write lock) raises the
    reported lag while it waits; the last commit's lag alone would stay small, and
    LookoutWriteLagHigh would never fire for a stalled store."""
    url = f"sqlite:///{tmp_path / 'stall.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    writer = make_writer(engine)
    holder = sqlite3.connect(tmp_path / "stall.db", isolation_level=None)
    writer.start()
    try:
        now = time.time()
        writer.buffer.put([task("task-received", "early", now, local_received=now)])
        wait_for(lambda: count(engine, Task) == 1, message="the first batch written")
        assert writer.stats.snapshot()["write_lag"] < 5
        holder.execute("BEGIN IMMEDIATE")  # the store stalls: every write waits
        stalled_at = time.time()
        writer.buffer.put([task("task-received", "late", stalled_at,
                                local_received=stalled_at)])
        wait_for(lambda: writer.stats.snapshot()["write_lag"] > 1.5,
                 message="the lag of the waiting batch reported")
        assert writer.stats.write_lag < 5  # no commit since: the last commit's figure
        holder.execute("ROLLBACK")
        wait_for(lambda: count(engine, Task) == 2, message="the waiting batch written")
        wait_for(lambda: writer.stats.unwritten_since is None, message="nothing in hand")
        assert writer.stats.snapshot()["write_lag"] == round(writer.stats.write_lag, 3)
    finally:
        holder.close()
        assert writer.stop(timeout=10)
        engine.dispose()
