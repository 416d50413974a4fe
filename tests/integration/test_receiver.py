"""The receive path against real brokers: bad input is counted, never contagious; acks wait
for commits.

Malformed events are published straight onto the event exchange, between valid ones, the
way a buggy or hostile client would: not JSON, missing or mistyped fields, unknown types,
a huge argument, and a `task.multi` list with bad members among good ones.
"""
from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest
from kombu import Connection, Producer

from helpers.support import wait_for
from helpers.workers import (
    collector_settings,
    status,
    tasks,
    timeline,
    unique,
    worker_row,
)
from lookout.collectors.buffer import EventBuffer, RawMessage
from lookout.collectors.events import TRUNCATION_MARKER
from lookout.collectors.receiver import EventReceiver
from lookout.collectors.service import Collector
from lookout.collectors.stats import CollectorStats
from lookout.core.store.db import make_engine

BIG = 3 * 1024 * 1024


def event(kind: str, **fields):
    return {"type": kind, "hostname": "producer@test", "timestamp": time.time(),
            "utcoffset": 0, "pid": 1, "clock": 1, **fields}


def publish(broker: str, messages) -> None:
    """Publish (routing_key, body) pairs; bytes bodies go out raw, as undecodable JSON."""
    from celery.events.event import get_exchange

    with Connection(broker) as conn:
        producer = Producer(conn.channel(), exchange=get_exchange(conn))
        for routing_key, body in messages:
            if isinstance(body, bytes):
                producer.publish(body, routing_key=routing_key,
                                 content_type="application/json", content_encoding="utf-8")
            else:
                producer.publish(body, routing_key=routing_key, serializer="json")


@pytest.fixture(params=["redis", "amqp"])
def broker(request):
    return request.getfixturevalue(f"{request.param}_broker")


@pytest.mark.parametrize("decoding", ["receiver", "writer"])
def test_bad_events_are_counted_and_their_neighbours_stored(broker, database_url, decoding):
    """"writer": every message is buffered raw, as under a backlog, and validated later."""
    settings = collector_settings(broker, database_url)
    good, big, mistyped = unique("good"), unique("big"), unique("mistyped")
    worker = f"{unique('sentinel')}@test"
    engine = make_engine(database_url)
    try:
        collector = Collector(settings, engine=engine)
        if decoding == "writer":
            collector.receiver.raw_backlog = 0
        with collector:
            wait_for(lambda: collector.stats.connected, 30, message="collector connected")
            publish(broker, [
                ("task.received", event("task-received", uuid=good, name="sample.add",
                                        args="(1, 2)", retries=0)),
                ("task.received", b"\x00{this is not json"),
                ("task.started", event("task-started")),  # no uuid
                ("task.started", {k: v for k, v in event("task-started", uuid=good).items()
                                  if k != "timestamp"}),
                ("task.succeeded", event("task-succeeded", uuid=mistyped, runtime="fast")),
                ("task.started", event("task-started", uuid=mistyped, hostname=123)),
                ("task.exploded", event("task-exploded", uuid=good)),
                ("task.received", event("task-received", uuid=big, name="sample.echo",
                                        args="x" * BIG)),
                ("task.multi", [
                    event("task-started", uuid=good),
                    {"type": "task-started", "uuid": good, "hostname": "producer@test"},
                    event("task-succeeded", uuid=good, result="3", runtime=0.5),
                    42,
                ]),
                ("worker.heartbeat", event("worker-heartbeat", hostname=worker, freq=2.0,
                                           active=0, processed=1, loadavg=[0.1, 0.2, 0.3])),
            ])
            rows = wait_for(lambda: worker_row(engine, worker)
                            and (r := tasks(engine, [good, big])).get(good)
                            and r[good]["state"] == "SUCCESS" and big in r and r,
                            30, message="valid events stored")
            expected = {"not json": 1, "missing uuid": 1, "missing timestamp": 2,
                        "bad runtime": 1, "bad hostname": 1, "unknown type": 1,
                        "not an object": 1}
            wait_for(lambda: status(engine, settings.collector_name)["stats"]
                     ["rejected_by_reason"] == expected, 15,
                     message="rejections in the status row")
            assert dict(collector.stats.rejected) == expected

        assert timeline(engine, good) == ["task-received", "task-started", "task-succeeded"]
        assert rows[good]["result"] == "3"
        assert mistyped not in tasks(engine, [mistyped])
        args = rows[big]["args"]
        marker = TRUNCATION_MARKER.format(BIG - settings.max_field_size)
        assert args == "x" * settings.max_field_size + marker
        final = status(engine, settings.collector_name)["stats"]
        assert final["rejected"] == 8
        reasons = {reason for _, reason, _ in final["last_rejections"]}
        assert reasons == set(expected)
    finally:
        engine.dispose()


@contextlib.contextmanager
def receiving(settings, buffer: EventBuffer, stats: CollectorStats):
    """Run an EventReceiver on a thread; on exit stop it as the service does."""
    receiver = EventReceiver(settings, buffer, stats)
    should_stop, flushed = threading.Event(), threading.Event()
    thread = threading.Thread(target=receiver.run, args=(should_stop, flushed),
                              name="lookout-receiver-test")
    thread.start()
    try:
        wait_for(lambda: stats.connected, 30, message="receiver connected")
        yield receiver
    finally:
        should_stop.set()
        receiver.idle.wait(10)
        flushed.set()
        thread.join(10)
        assert not thread.is_alive()


def queue_counts(broker: str, queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages in a RabbitMQ queue, read live from the broker."""
    vhost = urlsplit(broker).path.lstrip("/")
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers",
                          "name", "messages_ready", "messages_unacknowledged"],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        name, ready, unacked = line.split()
        if name == queue:
            return int(ready), int(unacked)
    raise AssertionError(f"queue {queue} not found in {out!r}")


def test_amqp_acks_only_what_the_writer_committed(amqp_broker):
    settings = collector_settings(amqp_broker, "sqlite://")
    ids = [unique("acked") for _ in range(3)]
    buffer, stats = EventBuffer(), CollectorStats()
    with receiving(settings, buffer, stats):
        publish(amqp_broker, [("task.started", event("task-started", uuid=i)) for i in ids])
        wait_for(lambda: len(buffer) == 3, 20, message="three events buffered")
        wait_for(lambda: queue_counts(amqp_broker, settings.event_queue_name) == (0, 3), 20,
                 interval=0.5, message="three unacked messages")
    # Never committed: the broker kept them for the next collector run.
    assert queue_counts(amqp_broker, settings.event_queue_name) == (3, 0)

    buffer, stats = EventBuffer(), CollectorStats()
    with receiving(settings, buffer, stats) as receiver:
        wait_for(lambda: len(buffer) == 3, 20, message="redelivered events buffered")
        events, tokens = buffer.get_batch(100, 0)
        assert sorted(e.uuid for e in events) == sorted(ids)
        receiver.on_commit(tokens)
        wait_for(lambda: queue_counts(amqp_broker, settings.event_queue_name) == (0, 0), 20,
                 interval=0.5, message="commit acked while running")


def test_redis_events_carry_no_ack_tokens(redis_broker):
    settings = collector_settings(redis_broker, "sqlite://")
    task_id = unique("pubsub")
    buffer, stats = EventBuffer(), CollectorStats()
    with receiving(settings, buffer, stats):
        publish(redis_broker, [("task.started", event("task-started", uuid=task_id))])

        def mine():
            events, tokens = buffer.get_batch(1000, 0.1)
            assert tokens == []
            return any(e.uuid == task_id for e in events)
        wait_for(mine, 20, message="event buffered")
    assert stats.connected is False and stats.disconnected_since is not None


def test_unreachable_broker_is_reported_and_stop_stays_prompt():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    settings = collector_settings(f"redis://127.0.0.1:{port}/0", "sqlite://",
                                  reconnect_max_backoff=60.0)
    stats = CollectorStats()
    receiver = EventReceiver(settings, EventBuffer(), stats)
    should_stop = threading.Event()
    thread = threading.Thread(target=receiver.run, args=(should_stop,),
                              name="lookout-receiver-test")
    thread.start()
    try:
        wait_for(lambda: stats.last_error, 20, message="connection error recorded")
        assert stats.connected is False
        assert stats.disconnected_since is not None
    finally:
        asked = time.monotonic()
        should_stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - asked < 2.0  # not stuck in a backoff sleep


def test_raw_messages_without_valid_events_do_not_end_a_batch_early():
    """A stopping writer takes an empty batch for an empty buffer: raw messages that
    decode to nothing must not hide the chunks behind them."""
    buffer = EventBuffer()
    stats = CollectorStats()
    receiver = EventReceiver(collector_settings("redis://127.0.0.1:1/0", "sqlite://"),
                             buffer, stats)
    for body in (b"not json", b'{"type": "task-started"}'):
        buffer.put_raw(RawMessage(body, "application/json", "utf-8", {"application/json"},
                                  time.time(), 1, receiver.expand))
    good = event("task-started", uuid=unique("after-raw"))
    buffer.put_raw(RawMessage(json.dumps([good]).encode(), "application/json", "utf-8",
                              {"application/json"}, 123.0, 1, receiver.expand))
    events, tokens = buffer.get_batch(1, 0)
    assert [e.uuid for e in events] == [good["uuid"]] and tokens == []
    assert events[0].local_received == 123.0
    assert len(buffer) == 0
    assert dict(stats.rejected) == {"not json": 1, "missing hostname": 1}
    assert stats.received == 1 and stats.last_event_at == 123.0


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_a_worker_started_without_events_is_switched_on_by_the_collector(
        broker, request, tmp_path, sqlite_url):
    """The collector's enable_events broadcast (sent on its own fail-fast channel, not
    through Celery's producer pool) reaches a worker started without -E."""
    from helpers.support import start_worker, wait_for
    from helpers.workers import collector_settings, task_client, unique, wait_states
    from lookout.collectors.service import Collector
    from lookout.core.store.db import make_engine

    broker_url = request.getfixturevalue("redis_broker" if broker == "redis" else "amqp_broker")
    hostname, queue = f"{unique('quiet')}@test", unique("quiet-q")
    worker = start_worker(tmp_path, broker_url, hostname, queues=queue, events=False)
    engine = make_engine(sqlite_url)
    try:
        with Collector(collector_settings(broker_url, sqlite_url), engine=engine), \
                task_client(broker_url) as app:
            task_id = unique("quiet-add")
            wait_for(lambda: "enabled by remote" in worker.output(), 30,
                     message="the worker says its events were switched on")
            app.send_task("sample.add", args=(2, 3), task_id=task_id, queue=queue)
            rows = wait_states(engine, {task_id: "SUCCESS"}, timeout=60)
        assert rows[task_id]["worker"] == hostname
    finally:
        worker.stop()
        engine.dispose()
