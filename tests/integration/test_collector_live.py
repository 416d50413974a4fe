"""A real collector against a real `celery worker -E`, on Redis and on RabbitMQ.

Each broker runs against a different store (Redis with SQLite, RabbitMQ with PostgreSQL)
so both backends see live traffic without doubling the slowest tests of the suite.
"""
from __future__ import annotations

import time

import pytest

from helpers.support import wait_for
from helpers.workers import (
    collector_settings,
    send,
    status,
    task_client,
    timeline,
    wait_connected,
    wait_states,
    worker_row,
)
from lookout.collectors.service import Collector
from lookout.core.store.db import make_engine

pytestmark = pytest.mark.slow


@pytest.fixture(params=[("redis", "sqlite"), ("amqp", "postgresql")],
                ids=["redis-sqlite", "amqp-postgresql"])
def live(request):
    """(worker, database URL) for one broker/store pairing."""
    broker, store = request.param
    worker = request.getfixturevalue(f"{broker}_worker")
    url = request.getfixturevalue("sqlite_url" if store == "sqlite" else "pg_database_url")
    return worker, url


def test_collector_records_tasks_and_workers(live):
    worker, url = live
    settings = collector_settings(worker.broker, url)
    engine = make_engine(url)
    try:
        with Collector(settings, engine=engine) as collector, task_client(worker.broker) as app:
            wait_connected(engine, settings.collector_name)
            # The heartbeat broadcast on connect makes the worker announce itself.
            wait_for(lambda: worker_row(engine, worker.hostname), 30,
                     message="worker row from the heartbeat broadcast")
            ok = send(app, worker, "sample.add", 2, 3)
            failed = send(app, worker, "sample.fail", "kaboom")
            retried = send(app, worker, "sample.retry", countdown=0.2)
            slow = send(app, worker, "sample.sleep", 1.0)
            rows = wait_states(engine, {ok: "SUCCESS", failed: "FAILURE",
                                        retried: "SUCCESS", slow: "SUCCESS"})
            assert collector.stats.rejected == {}

        for task_id in (ok, failed, retried, slow):
            assert rows[task_id]["worker"] == worker.hostname
            assert rows[task_id]["queue"] == worker.queue
            assert rows[task_id]["sent_at"] is not None
            assert rows[task_id]["received_at"] is not None

        assert rows[ok]["name"] == "sample.add"
        assert rows[ok]["result"] == "5"
        assert rows[ok]["retries"] == 0
        assert 0 <= rows[ok]["runtime"] < 5
        # task-sent is stamped after the publish, so a fast worker may beat it: compare
        # it apart from the worker's own events, which are ordered.
        events = timeline(engine, ok)
        assert events.count("task-sent") == 1
        assert [e for e in events if e != "task-sent"] == ["task-received", "task-started",
                                                          "task-succeeded"]

        assert "kaboom" in rows[failed]["exception"]
        assert "ValueError" in rows[failed]["traceback"]
        # As above: the client's task-sent may be stamped after a fast failure (seen in CI).
        assert [e for e in timeline(engine, failed) if e != "task-sent"][-1] == "task-failed"

        assert rows[retried]["retries"] == 2
        # Celery re-sends a retry from inside the task, naming it as its own parent: a
        # retry is one more attempt of the same task, never its own child.
        assert (rows[retried]["root_id"], rows[retried]["parent_id"]) == (retried, None)
        assert rows[retried]["eta"] > rows[retried]["sent_at"]  # the last countdown's
        events = timeline(engine, retried)
        assert events.count("task-retried") == 2
        assert events.count("task-started") == 3
        assert events[-1] == "task-succeeded"

        assert rows[slow]["runtime"] >= 1.0
        # Started and succeeded are stamped by different processes of the prefork pool:
        # allow for their scheduling, not for a missing second.
        assert rows[slow]["succeeded_at"] - rows[slow]["started_at"] >= 0.9

        host = worker_row(engine, worker.hostname)
        assert host["online"]
        assert time.time() - host["last_heartbeat"] < 30
        assert host["freq"] > 0
        assert host["sw_ident"] == "py-celery"

        final = status(engine, settings.collector_name)
        assert final["connected"] is False  # the last row, written at shutdown
        assert final["disconnected_since"] is not None
        assert final["stats"]["received"] >= 16
        assert final["stats"]["rejected"] == 0
        assert final["stats"]["buffer_pending"] == 0
        assert final["broker"] == worker.broker.replace(":guest@", ":***@")
    finally:
        engine.dispose()
