"""Hostile broker messages cost only themselves: no reconnect, nothing lost after them.

Anyone who can publish to the broker can send a body that is not a Celery envelope. On
Redis pub/sub a reconnect loses everything published meanwhile, so a malformed message
must be counted ("bad message") and skipped inside the delivery, the connection kept.
"""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import redis
from celery import Celery
from sqlalchemy import func, select

from helpers.support import wait_for
from helpers.workers import (
    collector_settings,
    send,
    task_client,
    timeline,
    wait_connected,
    wait_states,
)
from lookout.collectors.service import Collector
from lookout.core.store.db import make_engine
from lookout.core.store.models import Task

pytestmark = pytest.mark.slow

GOOD_ENVELOPE = {"body": "W10=", "content-encoding": "utf-8",
                 "content-type": "application/json", "headers": {},
                 "properties": {"body_encoding": "base64", "delivery_info": {
                     "exchange": "celeryev", "routing_key": "task.multi"},
                     "delivery_mode": 1, "delivery_tag": "x", "priority": 0}}
MALFORMED = {
    "a JSON list": b"[1,2,3]",
    "a JSON number": b"42",
    "not JSON": b"\xff\xfe not json",
    "body not base64": json.dumps({**GOOD_ENVELOPE, "body": "%%%not-base64%%%"}),
    "no properties": json.dumps({k: v for k, v in GOOD_ENVELOPE.items() if k != "properties"}),
    "properties not an object": json.dumps({**GOOD_ENVELOPE, "properties": "nope"}),
    "no body encoding": json.dumps({**GOOD_ENVELOPE, "properties": {}}),
}


def test_malformed_messages_followed_at_once_by_valid_events_lose_none(private_redis,
                                                                      sqlite_url):
    broker = f"{private_redis}/0"
    settings = collector_settings(broker, sqlite_url)
    engine = make_engine(sqlite_url)
    publisher = redis.Redis.from_url(broker)
    app = Celery("hostile", broker=broker, set_as_current=False)
    sent: list[str] = []
    try:
        with Collector(settings, engine=engine) as collector:
            wait_connected(engine, settings.collector_name)
            connected_since = collector.stats.connected_since
            with app.connection_for_write() as conn:
                dispatcher = app.events.Dispatcher(conn, hostname="hostile@test",
                                                   buffer_while_offline=False)
                for bad in MALFORMED.values():
                    # Same channel the events use; the valid events follow within a few ms.
                    publisher.publish("/0.celeryev/task.multi", bad)
                    for _ in range(20):
                        task_id = str(uuid.uuid4())
                        dispatcher.send("task-received", uuid=task_id, name="hostile.echo",
                                        args="()", kwargs="{}", retries=0)
                        sent.append(task_id)
                dispatcher.close()
                # One task.multi message: an event whose timestamp no float holds, then a
                # good one. The bad one cost its whole message ("internal error").
                grouped = app.events.Dispatcher(conn, hostname="hostile@test",
                                                buffer_while_offline=False,
                                                buffer_group=["task"], buffer_limit=100)
                grouped.send("task-received", uuid=str(uuid.uuid4()), name="hostile.echo",
                             args="()", kwargs="{}", retries=0, timestamp=10**400)
                sibling = str(uuid.uuid4())
                grouped.send("task-received", uuid=sibling, name="hostile.echo",
                             args="()", kwargs="{}", retries=0)
                sent.append(sibling)
                grouped.flush()
                grouped.close()

            def all_stored():
                with engine.connect() as db:
                    return db.scalar(select(func.count()).select_from(Task).where(
                        Task.uuid.in_(sent))) == len(sent)
            wait_for(all_stored, 30, message=f"all {len(sent)} valid events stored")
            stats = collector.stats.snapshot()
            assert collector.stats.connected_since == connected_since  # never reconnected
            assert collector.stats.connected
            # Each malformed message counted once, as a bad message, and nothing else.
            assert stats["rejected_by_reason"] == {"bad message": len(MALFORMED),
                                                   "bad timestamp": 1}, \
                stats["rejected_by_reason"]
    finally:
        app.close()
        publisher.close()
        engine.dispose()


def test_a_lone_surrogate_in_args_keeps_every_event_of_its_task(redis_worker, database_url):
    """A file name decoded with os.fsdecode reaches the store escaped, on both stores."""
    filename = os.fsdecode(b"report-\xff.csv")
    settings = collector_settings(redis_worker.broker, database_url)
    engine = make_engine(database_url)
    try:
        with Collector(settings, engine=engine):
            wait_connected(engine, settings.collector_name)
            with task_client(redis_worker.broker) as app:
                task_id = send(app, redis_worker, "sample.fail", filename)
            row = wait_states(engine, {task_id: "FAILURE"})[task_id]
            assert "report-\\udcff.csv" in row["args"]
            assert "report-\\udcff.csv" in row["exception"]
            wait_for(lambda: {"task-sent", "task-received", "task-started", "task-failed"}
                     <= set(timeline(engine, task_id)), 20, message="all four events")
    finally:
        engine.dispose()


def test_a_returning_redis_is_consumed_again_within_a_second(sqlite_url, tmp_path):
    """After a 10 s outage the collector is back as soon as the broker is: on pub/sub
    every second of delay is a second of events lost."""
    from helpers.browser import free_port
    from helpers.support import Process

    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(tmp_path)]
    broker = f"redis://127.0.0.1:{port}/0"

    def start(label: str) -> Process:
        server = Process(command, tmp_path / f"redis-{label}.log")
        wait_for(lambda: redis.Redis.from_url(broker, socket_connect_timeout=0.2).ping(),
                 10, interval=0.02, message="redis-server accepting")
        return server

    server = start("first")
    settings = collector_settings(broker, sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        with Collector(settings, engine=engine) as collector:
            wait_for(lambda: collector.stats.connected, 20, message="connected")
            server.stop()
            wait_for(lambda: not collector.stats.connected, 20, message="outage noticed")
            time.sleep(5)  # the outage itself (backoff long at its 1 s cap), not a sync
            server = start("again")
            back_at = time.monotonic()
            wait_for(lambda: collector.stats.connected, 10, interval=0.02,
                     message="reconnected")
            assert time.monotonic() - back_at < 1.5
    finally:
        server.stop()
        engine.dispose()
