"""Rows for tests, inserted straight into the store with SQLAlchemy Core.

Each helper fills every required column with a sensible default, takes any column as a
keyword to override it, inserts the row and returns it as a dict. The first argument may
be an Engine or an open Connection (to batch many inserts in one transaction).

    engine = make_engine(database_url)
    task = add_task(engine, state="FAILURE", name="proj.add", exception="KeyError('x')")
    add_event(engine, task["uuid"], "task-failed", exception="KeyError('x')")
    add_tasks(engine, 500, name="proj.mul")          # 500 tasks, one second apart
    add_worker(engine, "celery@a", last_heartbeat=time.time() - 30)
    add_rollup(engine, "proj.add", bucket=minute(now), succeeded=3, runtimes=[0.1, 0.2])
    set_collector_status(engine, connected=False, disconnected_since=now - 60)
"""
from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid as uuidlib
from typing import Any, Iterable

from sqlalchemy import Connection, Engine

from lookout.core import histogram
from lookout.core.store.models import (
    CollectorStatus,
    Task,
    TaskEvent,
    TaskRollup,
    Worker,
)

T0 = 1_750_000_000.0  # a fixed "now - something" so tests do not depend on the clock
_FINISHED_AT = {"SUCCESS": "succeeded_at", "FAILURE": "failed_at", "RETRY": "retried_at",
                "REVOKED": "revoked_at", "REJECTED": "rejected_at"}
_counter = itertools.count()


@contextlib.contextmanager
def _connection(bind: Engine | Connection):
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


def minute(ts: float) -> int:
    """The rollup bucket (epoch seconds of the minute start) holding `ts`."""
    return int(ts // 60 * 60)


def task_row(**fields: Any) -> dict:
    """A complete tasks row: a received-and-finished task unless told otherwise."""
    n = next(_counter)
    ts = float(fields.get("timestamp", T0 + n))
    state = fields.get("state", "SUCCESS")
    row = {
        "uuid": str(uuidlib.uuid4()), "name": "proj.tasks.add", "state": state,
        "state_ts": ts, "worker": "celery@worker1", "queue": "celery", "exchange": None,
        "routing_key": None, "args": "(2, 3)", "kwargs": "{}", "result": None,
        "exception": None, "traceback": None, "retries": 0, "eta": None, "expires": None,
        "root_id": None, "parent_id": None, "timestamp": ts, "sent_at": None,
        "received_at": ts, "started_at": None, "succeeded_at": None, "failed_at": None,
        "retried_at": None, "revoked_at": None, "expired": None, "rejected_at": None,
        "runtime": None,
        "queue_wait": None, "updated_at": ts,
    }
    if state not in ("PENDING", "RECEIVED", "REVOKED", "REJECTED"):
        row["started_at"] = ts + 0.5
        row["queue_wait"] = 0.5
    if state in _FINISHED_AT:
        row[_FINISHED_AT[state]] = ts + 1.5
        row["state_ts"] = ts + 1.5
    if state == "SUCCESS":
        row["runtime"], row["result"] = 1.0, "5"
    row.update(fields)
    return row


def add_task(bind: Engine | Connection, **fields: Any) -> dict:
    row = task_row(**fields)
    with _connection(bind) as conn:
        conn.execute(Task.__table__.insert(), [row])
    return row


def add_tasks(bind: Engine | Connection, count: int, start: float = T0, step: float = 1.0,
              **fields: Any) -> list[dict]:
    """`count` tasks with timestamps start, start+step, ...; same overrides for each."""
    rows = [task_row(**{"timestamp": start + i * step, **fields}) for i in range(count)]
    with _connection(bind) as conn:
        if rows:
            conn.execute(Task.__table__.insert(), rows)
    return rows


def add_event(bind: Engine | Connection, task_uuid: str, type: str, timestamp: float | None = None,
              hostname: str = "celery@worker1", local_received: float | None = None,
              clock: int = 0, **info: Any) -> dict:
    """One timeline row; extra keywords become the event's `info` JSON object."""
    timestamp = T0 if timestamp is None else timestamp
    row = {"task_uuid": task_uuid, "type": type, "hostname": hostname,
           "timestamp": timestamp, "clock": clock,
           "local_received": timestamp if local_received is None else local_received,
           "info": json.dumps(info) if info else None}
    with _connection(bind) as conn:
        conn.execute(TaskEvent.__table__.insert(), [row])
    return row


def add_worker(bind: Engine | Connection, hostname: str = "celery@worker1", **fields: Any) -> dict:
    """An online worker that just sent a heartbeat (by the real clock) unless told otherwise."""
    now = time.time()
    row = {"hostname": hostname, "online": True, "first_seen": now - 3600,
           "last_heartbeat": now, "last_event_ts": now, "freq": 2.0, "active": 0,
           "processed": 0, "loadavg": "[0.1, 0.2, 0.3]", "pid": 4242,
           "sw_ident": "py-celery", "sw_ver": "5.7.0", "sw_sys": "Linux", "utcoffset": 0}
    row.update(fields)
    with _connection(bind) as conn:
        conn.execute(Worker.__table__.insert(), [row])
    return row


def add_rollup(bind: Engine | Connection, name: str, bucket: int,
               runtimes: Iterable[float] = (), **counts: Any) -> dict:
    """One rollup minute; `runtimes` fill runtime_count/sum/hist as the collector would."""
    runtimes = list(runtimes)
    hist: dict[int, int] = {}
    for runtime in runtimes:
        histogram.add(hist, runtime)
    row = {"name": name, "bucket": int(bucket), "received": 0, "started": 0,
           "succeeded": 0, "failed": 0, "retried": 0, "revoked": 0, "rejected": 0,
           "runtime_count": len(runtimes), "runtime_sum": float(sum(runtimes)),
           "runtime_hist": histogram.dumps(hist) if hist else None}
    row.update(counts)
    with _connection(bind) as conn:
        conn.execute(TaskRollup.__table__.insert(), [row])
    return row


def set_collector_status(bind: Engine | Connection, name: str = "default",
                         stats: dict | None = None, **fields: Any) -> dict:
    """Replace the status row of collector `name`; fresh and connected unless told otherwise."""
    now = time.time()
    row = {"name": name, "broker": "redis://127.0.0.1:6379/0", "connected": True,
           "connected_since": now - 600, "disconnected_since": None,
           "last_event_at": now - 0.5, "started_at": now - 600, "updated_at": now,
           "stats": None}
    row.update(fields)
    base_stats = {"messages": 0, "received": 0, "rejected": 0, "rejected_by_reason": {},
                  "stored": 0, "duplicates": 0, "dropped": 0, "write_lag": 0.0,
                  "last_error": None, "last_write_error": None}
    row["stats"] = json.dumps({**base_stats, **(stats or {})})
    table = CollectorStatus.__table__
    with _connection(bind) as conn:
        conn.execute(table.delete().where(table.c.name == name))
        conn.execute(table.insert(), [row])
    return row
