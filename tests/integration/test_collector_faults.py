"""Broker outages: the collector reports them, reconnects by itself, and on RabbitMQ loses
nothing sent while it was away.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest
from kombu import Connection

from helpers.support import Process, wait_for
from helpers.workers import (
    collector_settings,
    launch_worker,
    send,
    status,
    task_client,
    tasks,
    timeline,
    wait_connected,
    wait_states,
)
from lookout.collectors.service import Collector
from lookout.core.store.db import make_engine

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(tmp_path, port: int, label: str) -> Process:
    """A throwaway redis-server owned by the test: nothing saved, nothing shared."""
    proc = Process(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no"], tmp_path / f"redis-{label}.log")
    proc.wait_output("Ready to accept connections", timeout=20)
    return proc


def test_redis_outage_is_reported_and_survived(tmp_path, sqlite_url):
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis_proc = start_redis(tmp_path, port, "first")
    worker = None
    engine = make_engine(sqlite_url)
    settings = collector_settings(broker, sqlite_url, reconnect_max_backoff=1.0)
    try:
        worker = launch_worker(tmp_path, broker, concurrency=1)
        with Collector(settings, engine=engine), task_client(broker) as app:
            first = wait_connected(engine, settings.collector_name)
            before = send(app, worker, "sample.add", 1, 1)
            wait_states(engine, {before: "SUCCESS"})

            stopped_at = time.time()
            redis_proc.stop()
            down = wait_for(lambda: (s := status(engine, settings.collector_name))
                            and not s["connected"] and s, 30,
                            message="status row shows the outage")
            assert down["disconnected_since"] >= stopped_at - 1
            assert down["connected_since"] is None
            assert down["stats"]["last_error"]

            redis_proc = start_redis(tmp_path, port, "second")
            again = wait_for(lambda: (s := status(engine, settings.collector_name))
                             and s["connected"] and s, 30, message="reconnected by itself")
            assert again["connected_since"] > first["connected_since"]
            assert again["disconnected_since"] is None
            assert again["stats"]["last_error"] is None  # the outage is over
            after = send(app, worker, "sample.add", 2, 2)
            rows = wait_states(engine, {before: "SUCCESS", after: "SUCCESS"}, timeout=90)
        assert rows[after]["worker"] == worker.hostname
        # task-sent is stamped by the client after publishing, so it may sort last.
        worker_side = [e for e in timeline(engine, after) if e != "task-sent"]
        assert worker_side[-1] == "task-succeeded"
    finally:
        engine.dispose()
        if worker is not None:
            worker.process.stop()
        redis_proc.stop()


def finished(worker_log: str, task_id: str) -> bool:
    return f"[{task_id}] succeeded" in worker_log or f"[{task_id}] raised" in worker_log


def queued_messages(broker: str, queue: str) -> int:
    with Connection(broker) as conn:
        return conn.default_channel.queue_declare(queue=queue, passive=True).message_count


def test_amqp_events_sent_while_collector_is_down_arrive(amqp_worker, sqlite_url):
    settings = collector_settings(amqp_worker.broker, sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        with task_client(amqp_worker.broker) as app:
            with Collector(settings, engine=engine):
                wait_connected(engine, settings.collector_name)
                warm = send(app, amqp_worker, "sample.add", 1, 2)
                wait_states(engine, {warm: "SUCCESS"})
            # Collector stopped: its named queue stays and fills up.
            while_down = {send(app, amqp_worker, "sample.add", 3, 4): "SUCCESS",
                          send(app, amqp_worker, "sample.fail", "down"): "FAILURE"}
            wait_for(lambda: all(finished(amqp_worker.process.output(), task_id)
                                 for task_id in while_down), 30,
                     message="worker ran the tasks while the collector was down")
            assert queued_messages(amqp_worker.broker, settings.event_queue_name) >= 2
            assert tasks(engine, while_down) == {}

            with Collector(settings, engine=engine) as second:
                wait_states(engine, while_down)
            # The first run acked its last commit before disconnecting: nothing came twice.
            assert second.stats.duplicates == 0
        for task_id in while_down:
            events = timeline(engine, task_id)
            assert {"task-sent", "task-received", "task-started"} <= set(events)
    finally:
        engine.dispose()



def test_a_broker_that_accepts_but_never_answers_is_an_outage(silenceable_redis,
                                                               sqlite_url):
    """Behind a proxy whose Redis is gone, connections are accepted and never answered:
    the collector must still notice the outage, and still stop when asked (unbounded
    sockets left it "connected" and deaf to stop, waiting in redis-py's handshake)."""
    broker = f"redis://127.0.0.1:{silenceable_redis.port}/0"
    settings = collector_settings(broker, sqlite_url)
    engine = make_engine(sqlite_url)
    collector = Collector(settings, engine=engine)
    try:
        collector.start()
        wait_for(lambda: collector.stats.connected, 20, message="connected")
        silenced_at = time.monotonic()
        silenceable_redis.silence()
        wait_for(lambda: not collector.stats.connected, 15, interval=0.05,
                 message="outage noticed")
        assert time.monotonic() - silenced_at < 12  # a 5 s socket bound, plus slack
        # The proxy ends the open connection ("closed by server"); every reconnect then
        # meets the silence and times out instead of waiting forever.
        wait_for(lambda: "Timeout" in (collector.stats.last_error or ""), 20,
                 interval=0.1, message="reconnects time out against the silent broker")
        stop_asked = time.monotonic()
        collector.stop()
        assert time.monotonic() - stop_asked < 15
        assert not [t.name for t in threading.enumerate()
                    if t.name.startswith("lookout-") and t.is_alive()]
    finally:
        collector.stop()
        engine.dispose()


def test_a_control_command_to_a_silent_broker_fails_instead_of_hanging(silenceable_redis):
    """A revoke or rate limit from the UI must answer (503) when the broker is silent,
    not hold a web thread forever."""
    from lookout.core.broadcast import CeleryBroadcaster
    from lookout.core.celery_client import BrokerUnavailable

    broadcast = CeleryBroadcaster(f"redis://127.0.0.1:{silenceable_redis.port}/0")
    silenceable_redis.silence()
    asked = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="unreachable"):
        broadcast("ping", {}, None, timeout=1.0)
    assert time.monotonic() - asked < 15


def test_a_hung_redis_is_an_outage_and_its_return_a_reconnect(tmp_path, sqlite_url):
    """A Redis that stops answering on an open connection (SIGSTOP: hung, or a network
    cut the kernel has not noticed) sends no error at all. The collector pings it, so it
    reports the outage within seconds instead of staying "connected" to silence, and the
    control broadcasts no longer wait for it (they went through Celery's producer pool,
    which retried forever)."""
    import os
    import signal

    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis_proc = start_redis(tmp_path, port, "hung")
    engine = make_engine(sqlite_url)
    settings = collector_settings(broker, sqlite_url, reconnect_max_backoff=1.0)
    collector = Collector(settings, engine=engine)
    try:
        collector.start()
        wait_for(lambda: collector.stats.connected, 20, message="connected")
        os.kill(redis_proc.popen.pid, signal.SIGSTOP)
        hung_at = time.monotonic()
        wait_for(lambda: not collector.stats.connected, 25, interval=0.05,
                 message="the hung broker noticed")
        assert time.monotonic() - hung_at < 20  # a ping every 5 s, a 5 s socket bound
        assert "Timeout" in collector.stats.last_error
        os.kill(redis_proc.popen.pid, signal.SIGCONT)
        wait_for(lambda: collector.stats.connected, 30, message="reconnected after SIGCONT")
        stop_asked = time.monotonic()
        collector.stop()
        assert time.monotonic() - stop_asked < 15
    finally:
        os.kill(redis_proc.popen.pid, signal.SIGCONT)
        collector.stop()
        redis_proc.stop()
        engine.dispose()


def test_a_stop_on_request_never_writes_a_disconnected_row_that_is_not_stopped(
        redis_broker, sqlite_url):
    """The receiver disconnects before the final row: that row, written at once, said
    "disconnected from broker" and /healthz was 503 for a moment of every rolling restart
    (seen in a trial). Every row written while stopping on request says stopped."""
    import json

    settings = collector_settings(redis_broker, sqlite_url)
    engine = make_engine(sqlite_url)
    collector = Collector(settings, engine=engine)
    written: list[tuple[bool, bool]] = []
    write = collector.status.write

    def recorded():
        row = collector.status.row()
        written.append((row["connected"], bool(json.loads(row["stats"]).get("stopped"))))
        write()
    collector.status.write = recorded
    try:
        collector.start()
        wait_connected(engine, settings.collector_name)
        written.clear()  # before it connected, rows said not connected: rightly so
        collector.stop(asked=True)
        disconnected = [stopped for connected, stopped in written if not connected]
        assert disconnected and all(disconnected), written
        assert status(engine, settings.collector_name)["connected"] is False
    finally:
        collector.stop()
        engine.dispose()
