"""Pieces shared by the collector tests: session-wide workers, a task client, row probes.

Workers are slow to start, so one per broker serves all the tests of a module; each
listens on a queue of its own and tests use fresh task ids, so tests never depend on what
ran before them. Module scope, not session: a worker left running would answer other
modules' control broadcasts. The worker fixtures are in integration/conftest.py.
"""
from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine, select

from helpers.support import Process, start_worker, wait_for
from lookout.core.config import Settings
from lookout.core.store.models import CollectorStatus, Task, TaskEvent, Worker


class RunningWorker(NamedTuple):
    broker: str
    hostname: str
    queue: str
    process: Process


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def launch_worker(tmp_path: Path, broker: str, concurrency: int = 2) -> RunningWorker:
    hostname = f"{unique('lookout-w')}@test"
    queue = unique("lookout-q")
    process = start_worker(tmp_path, broker, hostname, queues=queue, concurrency=concurrency)
    return RunningWorker(broker, hostname, queue, process)


@contextlib.contextmanager
def task_client(broker: str):
    """A Celery client that, like a real producer here, emits task-sent events."""
    from celery import Celery

    app = Celery(unique("lookout-client"), broker=broker, set_as_current=False)
    app.conf.update(task_send_sent_event=True, broker_connection_retry_on_startup=True)
    try:
        yield app
    finally:
        app.close()


def send(app, worker: RunningWorker, name: str, *args: Any, **kwargs: Any) -> str:
    task_id = unique(name.replace(".", "-"))
    app.send_task(name, args=args, kwargs=kwargs, task_id=task_id, queue=worker.queue)
    return task_id


def collector_settings(broker: str, database_url: str, **overrides: Any) -> Settings:
    """Settings for one test's collector: its own status row name and RabbitMQ queue."""
    values = dict(broker_url=broker, database_url=database_url,
                  collector_name=unique("collector"), event_queue_name=unique("lookout.events"),
                  event_queue_expires=300.0)
    values.update(overrides)
    return Settings(**values)


def collector_env(settings: Settings) -> dict[str, str]:
    """LOOKOUT_* variables for a `lookout collect` subprocess (broker and database go as
    --broker/--database, the way an operator types them)."""
    names = ("collector_name", "event_queue_name", "event_queue_expires",
             "reconnect_max_backoff")
    return {f"LOOKOUT_{name.upper()}": str(getattr(settings, name)) for name in names}


def tasks(engine: Engine, ids) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(select(Task).where(Task.uuid.in_(list(ids)))).mappings().all()
    return {row["uuid"]: row for row in rows}


def wait_states(engine: Engine, expected: dict[str, str], timeout: float = 60.0) -> dict:
    """Poll until every task id has its expected state; returns the rows."""
    def reached():
        rows = tasks(engine, expected)
        done = all(rows.get(i) is not None and rows[i]["state"] == s
                   for i, s in expected.items())
        return rows if done else None
    try:
        return wait_for(reached, timeout, interval=0.2, message=f"task states {expected}")
    except AssertionError as exc:
        now = {i: r["state"] for i, r in tasks(engine, expected).items()}
        raise AssertionError(f"{exc}; states now: {now}") from None


def timeline(engine: Engine, task_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(TaskEvent.type).where(TaskEvent.task_uuid == task_id)
                                 .order_by(TaskEvent.timestamp, TaskEvent.id)).scalars())


def worker_row(engine: Engine, hostname: str):
    with engine.connect() as conn:
        return conn.execute(select(Worker).where(Worker.hostname == hostname)
                            ).mappings().first()


def status(engine: Engine, name: str) -> dict[str, Any] | None:
    """The collector_status row with its stats JSON decoded, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(CollectorStatus).where(CollectorStatus.name == name)
                           ).mappings().first()
    if row is None:
        return None
    row = dict(row)
    row["stats"] = json.loads(row["stats"] or "{}")
    return row


def wait_connected(engine: Engine, name: str, timeout: float = 30.0) -> dict:
    return wait_for(lambda: (s := status(engine, name)) and s["connected"] and s,
                    timeout, interval=0.2, message=f"collector {name} connected")
