"""The message queue between collector and web: checked by both ends, shown by /healthz.

python-socketio's Redis manager drops what it cannot publish and only logs it, so an
outage of the queue used to freeze every live page while /healthz said "ok". Real Redis
throughout: a private redis-server behind a proxy that can close or go silent.
"""
from __future__ import annotations

import threading
import time

import pytest
import redis

from helpers.browser import free_port
from helpers.factories import set_collector_status
from helpers.support import wait_for
from helpers.workers import unique
from lookout.collectors.message_queue import (
    PROBE_TIMEOUT,
    MessageQueueProbe,
    external_emitter,
)
from lookout.collectors.push import LivePublisher
from lookout.collectors.stats import CollectorStats


@pytest.fixture
def listener(private_redis):
    """A subscriber on a fresh channel, straight to Redis: what a web process hears."""
    channel = unique("mq-channel")
    client = redis.Redis.from_url(private_redis)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    wait_for(lambda: dict(client.pubsub_numsub(channel))[channel.encode()] == 1, 10,
             message="subscribed")
    try:
        yield channel, pubsub
    finally:
        pubsub.close()
        client.close()


def heard(pubsub) -> list[bytes]:
    out = []
    while (message := pubsub.get_message(timeout=0.2)) is not None:
        out.append(message["data"])
    return out


def test_probe_counts_the_channels_listeners_and_names_a_refused_connection(private_redis,
                                                                            listener):
    channel, _ = listener
    probe = MessageQueueProbe(private_redis, channel, max_age=0)
    refused = MessageQueueProbe(f"redis://127.0.0.1:{free_port()}/0", channel)
    try:
        assert probe.check() == {"ok": True, "subscribers": 1, "error": None}
        assert MessageQueueProbe(private_redis, unique("nobody")).check()["subscribers"] == 0
        answer = refused.check()
        assert answer["ok"] is False and answer["subscribers"] is None
        assert "ConnectionError" in answer["error"]
    finally:
        probe.close()
        refused.close()


def test_a_silent_queue_is_judged_within_the_probe_timeout_and_holds_up_no_other_caller(
        silenceable_redis, listener):
    """Accepts connections, never answers: the check ends, and a second caller arriving
    meanwhile gets an answer at once instead of queueing behind it."""
    channel, _ = listener
    url = f"redis://127.0.0.1:{silenceable_redis.port}/0"
    probe = MessageQueueProbe(url, channel, max_age=0)
    try:
        assert probe.check()["ok"] is True
        silenceable_redis.silence()
        answers = []
        first = threading.Thread(target=lambda: answers.append(probe.check()))
        asked = time.monotonic()
        first.start()
        wait_for(lambda: probe._lock.locked(), 5, interval=0.01, message="first caller asking")
        second = probe.check()
        assert time.monotonic() - asked < PROBE_TIMEOUT  # not queued behind the first
        assert second["ok"] is True  # the last answer, until the first caller knows better
        first.join(2 * PROBE_TIMEOUT + 5)
        assert not first.is_alive()  # one bounded attempt, not a hang or retries
        (answer,) = answers
        assert answer["ok"] is False and "Timeout" in answer["error"]
        assert probe.check() == answer  # fresh: max_age 0 asks again, and it is still silent
    finally:
        probe.close()


def test_push_skips_a_dead_queue_reports_it_in_the_collector_stats_and_resumes(
        silenceable_redis, listener, caplog):
    channel, pubsub = listener
    caplog.set_level("INFO", logger="lookout.collectors.push")
    url = f"redis://127.0.0.1:{silenceable_redis.port}/0"
    stats = CollectorStats()
    publisher = LivePublisher(external_emitter(url, channel))
    publisher.probe = MessageQueueProbe(url, channel, max_age=0)
    publisher.stats = stats
    try:
        assert publisher.flush() >= 2  # beat and overview, every tick
        wait_for(lambda: heard(pubsub), 10, message="the beat published")
        assert stats.live == {"ok": True, "subscribers": 1, "error": None}
        assert stats.snapshot()["live"] == stats.live  # what the status row carries

        silenceable_redis.silence()
        asked = time.monotonic()
        assert publisher.flush() == 0
        assert time.monotonic() - asked < 4 * PROBE_TIMEOUT  # bounded, never a hang
        assert stats.live["ok"] is False and stats.live["error"]
        heard(pubsub)

        silenceable_redis.resume()
        wait_for(lambda: publisher.flush() >= 2, 20, message="pushing again")
        wait_for(lambda: any(b'"beat"' in data for data in heard(pubsub)), 10,
                 message="a beat after the outage")
        assert stats.live["ok"] is True
        # Lookout's own words, once each (python-socketio's say only "Cannot publish").
        lines = [r.getMessage() for r in caplog.records if r.name == "lookout.collectors.push"]
        assert sum("message queue unreachable" in line for line in lines) == 1, lines
        assert sum("message queue reachable again" in line for line in lines) == 1, lines
    finally:
        publisher.probe.close()
        publisher.emitter.redis.close()


def test_healthz_reports_the_queue_from_the_web_and_from_each_collector(make_app, sqlite_url,
                                                                        private_redis):
    app = make_app(sqlite_url)
    client = app.test_client()
    health = app.extensions["lookout.health"]
    engine = app.extensions["lookout.engine"]
    set_collector_status(engine, "c1", stats={"live": {"ok": True, "subscribers": 1,
                                                       "error": None}})
    health.message_queue = MessageQueueProbe(private_redis, unique("chan"))
    try:
        response = client.get("/healthz")
        body = response.get_json()
        assert response.status_code == 200, body
        assert body["message_queue"] == {"ok": True, "subscribers": 0, "error": None}
        assert body["collectors"][0]["live"]["ok"] is True

        # The web process cannot reach it.
        health.message_queue.close()
        health.message_queue = MessageQueueProbe(f"redis://127.0.0.1:{free_port()}/0", "c")
        response = client.get("/healthz")
        body = response.get_json()
        assert response.status_code == 503 and body["status"] == "degraded"
        (problem,) = body["problems"]
        assert problem.startswith("message queue unreachable from this web process: "
                                  "live updates stopped (ConnectionError")

        # A collector cannot reach it (the web can: no probe of its own here).
        health.message_queue.close()
        health.message_queue = None
        set_collector_status(engine, "c1", stats={"live": {
            "ok": False, "subscribers": None, "error": "TimeoutError: Timeout reading"}})
        body = client.get("/healthz").get_json()
        assert body["problems"] == ["collector c1: message queue unreachable from it: live "
                                    "updates stopped (TimeoutError: Timeout reading)"]
        assert body["message_queue"] is None

        # A stopped collector's last word about the queue is no problem.
        set_collector_status(engine, "c1", connected=False, stats={"stopped": True, "live": {
            "ok": False, "subscribers": None, "error": "gone"}})
        set_collector_status(engine, "c2")
        assert client.get("/healthz").status_code == 200
    finally:
        if health.message_queue is not None:
            health.message_queue.close()


def test_a_standalone_collector_and_web_both_report_the_queue_they_share(redis_broker,
                                                                         sqlite_url, tmp_path):
    """`lookout collect` + `lookout web` on one message queue: /healthz shows the
    collector's own check of the queue, and the web process subscribed once a live page
    connected (python-socketio subscribes on the first connection)."""
    import socketio as socketio_client

    from helpers.browser import get_json
    from helpers.support import VENV_BIN, Process
    from lookout.collectors.push import NAMESPACE

    port = free_port()
    lookout = str(VENV_BIN / "lookout")
    common = ["--database", sqlite_url, "--message-queue", redis_broker]
    name = unique("mq-health")
    collector = Process([lookout, "collect", "--broker", redis_broker, *common],
                        tmp_path / "collect.log", env={"LOOKOUT_COLLECTOR_NAME": name})
    web = Process([lookout, "web", "--port", str(port), "--no-auth", *common],
                  tmp_path / "web.log")
    base = f"http://127.0.0.1:{port}"
    client = socketio_client.Client()

    def reported(subscribers: int):
        status, body = get_json(base + "/healthz")
        mine = [c for c in body.get("collectors", []) if c["name"] == name]
        return (status == 200 and mine and mine[0]["live"]
                and mine[0]["live"]["subscribers"] >= subscribers
                and body["message_queue"]["subscribers"] >= subscribers and body)

    try:
        body = wait_for(lambda: reported(0), 60, message="both report the queue")
        assert body["message_queue"]["ok"] is True
        (mine,) = [c for c in body["collectors"] if c["name"] == name]
        assert mine["live"]["ok"] is True and mine["live"]["error"] is None
        client.connect(base, namespaces=[NAMESPACE], transports=["websocket"])
        wait_for(lambda: reported(1), 30, message="the web process subscribed, seen by both")
    finally:
        client.disconnect()
        web_code, collector_code = web.stop(), collector.stop()
    assert web_code == 0, web.output()[-2000:]
    assert collector_code == 0, collector.output()[-2000:]


def test_a_web_process_subscribes_again_within_seconds_of_the_queue_coming_back(tmp_path,
                                                                                sqlite_url):
    """python-socketio's listener doubled its wait after each failed attempt, up to 60 s:
    after a 17 s outage it tried again only at 31 s, pages frozen meanwhile. Lookout's
    retries every second, and logs the outage once, not at every attempt."""
    import socketio as socketio_client

    from helpers.support import VENV_BIN, Process
    from lookout.collectors.push import NAMESPACE

    port = free_port()
    mq = f"redis://127.0.0.1:{port}/0"
    channel = unique("web-channel")

    def redis_server() -> Process:
        server = Process(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                         tmp_path / "redis.log")
        wait_for(lambda: redis.Redis.from_url(mq, socket_connect_timeout=1).ping(), 20,
                 message="redis-server up")
        return server

    def subscribers() -> int:
        with redis.Redis.from_url(mq, socket_connect_timeout=1) as client:
            return dict(client.pubsub_numsub(channel))[channel.encode()]

    server = redis_server()
    web_port = free_port()
    web = Process([str(VENV_BIN / "lookout"), "web", "--port", str(web_port), "--no-auth",
                   "--database", sqlite_url, "--message-queue", mq],
                  tmp_path / "web.log", env={"LOOKOUT_MESSAGE_QUEUE_CHANNEL": channel})
    client = socketio_client.Client()
    try:
        from helpers.browser import get_json

        wait_for(lambda: get_json(f"http://127.0.0.1:{web_port}/readyz")[0] == 200, 60,
                 message="web up")
        client.connect(f"http://127.0.0.1:{web_port}", namespaces=[NAMESPACE],
                       transports=["websocket"])
        wait_for(lambda: subscribers() == 1, 20, message="the web process subscribed")
        server.stop()
        time.sleep(17)  # the outage itself: the old listener's retries spread to 15 and 31 s
        server = redis_server()
        back = time.monotonic()
        wait_for(lambda: subscribers() == 1, 8, message="subscribed again")
        assert time.monotonic() - back < 8
        wait_for(lambda: "live updates from collectors resume" in web.output(), 10,
                 message="the end of the outage logged")
        assert web.output().count("message queue unreachable") == 1, web.output()[-3000:]
    finally:
        client.disconnect()
        assert web.stop() == 0, web.output()[-2000:]
        server.stop()
