"""Queue depth, the inspect service and the Workers/Queues/Retries endpoints, on real parts.

Depth is checked on the real brokers with tasks sent to a queue nobody consumes, so it
can only rise; inspect runs against a real `celery worker -E` and then against one that
has been shut down, which must end in a clear per-call error within the timeout.
"""
from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from helpers.apps import build_app
from helpers.factories import add_rollup, add_task, add_worker, minute
from helpers.support import wait_for
from helpers.workers import launch_worker, task_client, unique
from lookout.collectors.queues import QueueSampler, measure, redis_keys
from lookout.core.config import Settings
from lookout.core.inspector import BrokerUnavailable, Inspector, parse_registered
from lookout.core.store.db import make_engine
from lookout.core.store.models import QueueSample

UNREACHABLE = "redis://127.0.0.1:1/0"


def depth_of(broker: str, queue: str):
    return {d.name: d for d in measure(broker, [queue])}[queue]


# -- queue depth -----------------------------------------------------------------------

def test_redis_keys_follow_kombu_priority_naming():
    assert redis_keys("q") == {0: "q", 3: "q\x06\x163", 6: "q\x06\x166", 9: "q\x06\x169"}


def test_redis_depth_rises_and_counts_priority_subqueues(redis_broker, sqlite_url):
    lonely = unique("lonely")
    engine = make_engine(sqlite_url)
    sampler = QueueSampler(Settings(broker_url=redis_broker, database_url=sqlite_url),
                           engine, extra_names={lonely})
    with task_client(redis_broker) as client:
        assert depth_of(redis_broker, lonely).messages == 0
        for _ in range(3):
            client.send_task("sample.add", args=(1, 2), queue=lonely)
        first = {d.name: d for d in sampler.sample_once()}[lonely]
        client.send_task("sample.add", args=(1, 2), queue=lonely, priority=5)
        client.send_task("sample.add", args=(1, 2), queue=lonely, priority=5)
        client.send_task("sample.add", args=(1, 2), queue=lonely, priority=9)
        second = {d.name: d for d in sampler.sample_once()}[lonely]
    assert first.messages == 3 and first.by_priority[0] == 3
    assert second.messages == 6
    assert second.by_priority == {0: 3, 3: 2, 6: 0, 9: 1}
    with engine.connect() as conn:
        stored = conn.execute(select(QueueSample.messages).where(QueueSample.queue == lonely)
                              .order_by(QueueSample.timestamp)).scalars().all()
    assert stored == [3, 6]
    engine.dispose()


def test_rabbitmq_depth_and_consumer_counts(amqp_broker, amqp_worker):  # noqa: F811
    lonely = unique("lonely")
    with task_client(amqp_broker) as client:
        for count in (1, 2, 3):
            client.send_task("sample.add", args=(1, 2), queue=lonely)
            wait_for(lambda: depth_of(amqp_broker, lonely).messages == count, 10,
                     message=f"{count} messages in {lonely}")
    depths = {d.name: d for d in measure(amqp_broker, [lonely, amqp_worker.queue,
                                                       unique("missing")])}
    assert depths[lonely].consumers == 0
    assert depths[amqp_worker.queue].consumers == 1
    missing = [d for name, d in depths.items() if name.startswith("missing")][0]
    assert missing.messages is None and "does not exist" in missing.error


def test_a_queue_nobody_consumes_names_the_worker_that_last_did(amqp_broker, amqp_worker,
                                                                 sqlite_url, make_app):
    """An on-call trial saw "0 consumers" for a queue whose only worker had died, and
    nothing said which worker that was. The sampler keeps what workers answer."""
    from lookout.core.store.db import upgrade
    from lookout.core.store.models import WorkerQueue
    from helpers.workers import collector_settings

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        sampler = QueueSampler.from_settings(collector_settings(amqp_broker, sqlite_url),
                                             engine)
        sampler.sample_once()  # the real worker answers active_queues
        with engine.connect() as conn:
            told = {(h, q) for h, q in conn.execute(
                select(WorkerQueue.hostname, WorkerQueue.queue))}
        assert (amqp_worker.hostname, amqp_worker.queue) in told
        # A queue whose worker is gone (its last answer kept) and a message waiting there.
        lonely = unique("lonely")
        with engine.begin() as conn:
            conn.execute(WorkerQueue.__table__.insert(), [
                {"hostname": "gone@h", "queue": lonely, "seen_at": time.time() - 300}])
        add_task(engine, queue=lonely, timestamp=time.time())  # the history names it
        with task_client(amqp_broker) as client:
            client.send_task("sample.add", args=(1, 2), queue=lonely)
        wait_for(lambda: depth_of(amqp_broker, lonely).messages == 1, 10, message="waiting")
        app = make_app(sqlite_url, broker_url=amqp_broker, auth=False)
        items = {q["name"]: q for q in app.test_client().get("/api/v1/queues")
                 .get_json()["items"]}
        assert items[lonely]["consumers"] == 0
        assert [w["hostname"] for w in items[lonely]["last_consumers"]] == ["gone@h"]
        assert "last_consumers" not in items[amqp_worker.queue]  # consumed now
        add_worker(engine, hostname=amqp_worker.hostname)  # its row (no collector here)
        worker = app.test_client().get(f"/api/v1/workers/{amqp_worker.hostname}").get_json()
        assert amqp_worker.queue in {q["queue"] for q in worker["queues"]}
    finally:
        engine.dispose()


def test_rabbitmq_sampling_includes_the_collectors_own_event_queue(amqp_broker, sqlite_url,
                                                                   redis_broker, tmp_path,
                                                                   make_app):
    """Its depth is how far the collectors are behind; with none consuming it, nobody
    collects (a trial looked for it on the Queues page). Redis has no such queue."""
    from lookout.collectors.service import Collector
    from lookout.core.store.db import upgrade
    from helpers.workers import collector_settings, wait_connected

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    settings = collector_settings(amqp_broker, sqlite_url, queue_sample_interval=0)
    collector = Collector(settings, engine=engine).start()
    try:
        wait_connected(engine, settings.collector_name)
        depths = {d.name: d for d in QueueSampler(settings, engine).sample_once()}
        events = depths[settings.event_queue_name]
        assert events.error is None and events.consumers == 1 and events.messages is not None
        # Flower has no such queue: its API leaves it out (a script sums these depths).
        with task_client(amqp_broker) as celery:  # a task queue for it to list
            celery.send_task("sample.add", args=(1, 2), queue="celery")
        client = make_app(sqlite_url, broker_url=amqp_broker, auth=False,
                          event_queue_name=settings.event_queue_name).test_client()
        def listed() -> set[str]:
            response = client.get("/api/queues/length")
            assert response.status_code == 200, response.get_json()
            return {q["name"] for q in response.get_json()["active_queues"]}
        # The task queue is known once the collector has stored the task's sent event.
        names = wait_for(lambda: "celery" in (found := listed()) and found, 30,
                         message="the celery queue listed")
        assert settings.event_queue_name not in names
        # The native API lists it, and names it for the pages' wording ("no collector
        # consumes it", not "no worker takes these").
        native = client.get("/api/v1/queues").get_json()
        assert native["events_queue"] == settings.event_queue_name
        assert settings.event_queue_name in {q["name"] for q in native["items"]}
    finally:
        collector.stop()
        engine.dispose()
    redis_store = f"sqlite:///{tmp_path / 'redis.db'}"  # its own: names come from history
    upgrade(redis_store)
    redis_engine = make_engine(redis_store)
    try:
        on_redis = QueueSampler(collector_settings(redis_broker, redis_store), redis_engine)
        assert on_redis.settings.event_queue_name not in on_redis.queue_names()
    finally:
        redis_engine.dispose()


def test_unreachable_broker_raises():
    from kombu.exceptions import OperationalError

    started = time.monotonic()
    with pytest.raises(OperationalError):
        measure(UNREACHABLE, ["celery"])
    assert time.monotonic() - started < 10


# -- inspect ---------------------------------------------------------------------------

def test_parse_registered_reads_limits():
    tasks = parse_registered(["a.b [rate_limit=10/m time_limit=30 soft_time_limit=None]",
                              "plain.task"])
    assert tasks[0] == {"name": "a.b", "rate_limit": "10/m", "time_limit": "30",
                        "soft_time_limit": None}
    assert tasks[1] == {"name": "plain.task", "rate_limit": None, "time_limit": None,
                        "soft_time_limit": None}


def test_inspect_real_worker_then_clean_timeout_when_gone(redis_broker, tmp_path):
    worker = launch_worker(tmp_path, redis_broker, concurrency=3)
    inspector = Inspector(redis_broker, timeout=1.0)
    try:
        report = inspector.worker(worker.hostname)
        assert report["responded"], report["errors"]
        assert report["pool"]["concurrency"] == 3
        assert "prefork" in report["pool"]["implementation"]
        names = {t["name"] for t in report["registered"]}
        assert {"sample.add", "sample.retry", "sample.sleep"} <= names
        assert [q["name"] for q in report["queues"]] == [worker.queue]
        assert report["active"] == [] and report["reserved"] == []
        assert report["stats"]["pool"]["max-concurrency"] == 3
        assert "active_queues" not in report["errors"]
        assert worker.hostname in inspector.active_queues()
    finally:
        worker.process.stop()
    started = time.monotonic()
    gone = inspector.worker(worker.hostname)
    elapsed = time.monotonic() - started
    assert not gone["responded"]
    assert elapsed < 5, elapsed
    assert set(gone["errors"]) == {"stats", "active", "reserved", "scheduled", "registered",
                                   "active_queues", "conf"}
    assert all("no reply from " + worker.hostname in e for e in gone["errors"].values())


def test_inspect_unreachable_broker_is_broker_unavailable():
    with pytest.raises(BrokerUnavailable, match="unreachable"):
        Inspector(UNREACHABLE, timeout=0.5).worker("celery@nowhere")


# -- endpoints -------------------------------------------------------------------------

def make_client(database_url: str, broker: str):
    app = build_app(database_url, broker_url=broker, queue_sample_interval=10.0)
    app.extensions["lookout.inspector"] = Inspector(broker, timeout=0.5)  # quick to give up
    return app, app.test_client()


@pytest.fixture
def web(sqlite_url, redis_broker):
    app, client = make_client(sqlite_url, redis_broker)
    yield app, client
    app.extensions["lookout.engine"].dispose()


def test_queues_endpoint_lists_history_queues_with_depth(web, redis_broker):
    app, client = web
    lonely = unique("lonely")
    add_task(app.extensions["lookout.engine"], queue=lonely, timestamp=time.time())
    with task_client(redis_broker) as sender:
        sender.send_task("sample.add", args=(1, 2), queue=lonely, priority=9)
    response = client.get("/api/v1/queues")
    assert response.status_code == 200
    body = response.get_json()
    assert body["transport"] == "redis" and body["events_queue"] is None  # pub/sub
    item = {q["name"]: q for q in body["items"]}[lonely]
    assert item["messages"] == 1 and item["by_priority"]["9"] == 1
    assert client.get("/api/v1/queues?bogus=1").status_code == 400


def test_queue_history_buckets_and_404(web):
    app, client = web
    now = time.time()
    with app.extensions["lookout.engine"].begin() as conn:
        conn.execute(QueueSample.__table__.insert(), [
            {"queue": "hist", "timestamp": now - 50 + i, "messages": m, "consumers": 0}
            for i, m in enumerate([1, 7, 2])] + [
            {"queue": "hist", "timestamp": now - 7200, "messages": 99, "consumers": 0}])
    body = client.get("/api/v1/queues/hist/history?window=1h").get_json()
    assert body["queue"] == "hist" and body["step"] == 12.0
    assert max(p["messages"] for p in body["points"]) == 7  # the old sample is outside
    assert sum(1 for p in body["points"]) <= 3
    missing = client.get("/api/v1/queues/never-seen/history")
    assert missing.status_code == 404
    assert "never-seen" in missing.get_json()["error"]["message"]
    assert client.get("/api/v1/queues/hist/history?window=nope").status_code == 400


def test_inspect_endpoint_404_and_offline_worker_errors(web, monkeypatch):
    app, client = web
    asked = []
    inspector = app.extensions["lookout.inspector"]
    real_worker = inspector.worker
    monkeypatch.setattr(inspector, "worker",
                        lambda name: asked.append(name) or real_worker(name))
    unknown = client.get("/api/v1/workers/nobody@nowhere/inspect")
    assert unknown.status_code == 404 and "in the history" in unknown.get_json()["error"]["message"]
    assert asked == []  # no broadcast (and its 2 s reply timeout) for a name nobody knows
    add_worker(app.extensions["lookout.engine"], "gone@host", online=False)
    known = client.get("/api/v1/workers/gone@host/inspect")
    assert known.status_code == 200
    body = known.get_json()
    assert body["responded"] is False and "no reply" in body["errors"]["stats"]


def test_unreachable_broker_gives_503(sqlite_url):
    app, client = make_client(sqlite_url, UNREACHABLE)
    add_worker(app.extensions["lookout.engine"], "celery@x")
    for path in ("/api/v1/queues", "/api/v1/workers/celery@x/inspect"):
        response = client.get(path)
        assert response.status_code == 503, path
        message = response.get_json()["error"]["message"]
        assert message.startswith("broker redis://127.0.0.1:1/0 unreachable: "), message
    app.extensions["lookout.engine"].dispose()


def test_retries_endpoint_rates_per_name(web):
    app, client = web
    engine = app.extensions["lookout.engine"]
    bucket = minute(time.time())
    add_rollup(engine, "flaky", bucket=bucket, retried=3, succeeded=1)
    add_rollup(engine, "steady", bucket=bucket, succeeded=10)
    add_task(engine, state="RETRY", name="flaky", timestamp=time.time())
    body = client.get("/api/v1/retries?window=1h").get_json()
    assert body["tasks"] == [{"name": "flaky", "retried": 3, "succeeded": 1, "failed": 0,
                              "rate": 0.75}]
    assert [s["name"] for s in body["series"]] == ["flaky"]
    assert sum(p["retried"] for p in body["series"][0]["points"]) == 3
    retrying = client.get("/api/v1/tasks?state=RETRY").get_json()
    assert [t["name"] for t in retrying["items"]] == ["flaky"]


@pytest.mark.parametrize("path", ["/workers", "/workers/a@b", "/queues", "/retries",
                                  "/schedules"])
def test_pages_render_without_inline_script_or_style(web, path):
    _, client = web
    response = client.get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+\s*=", html, re.I)
    assert not re.search(r"\sstyle\s*=|<style", html, re.I)


def test_worker_page_escapes_hostname(web):
    _, client = web
    html = client.get("/workers/<img src=x onerror=alert(1)>").get_data(as_text=True)
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_depth_reads_the_keys_of_an_app_with_a_key_prefix(redis_broker):
    """-A proj with a Redis global_keyprefix: depth must read `prefix:queue`, not `queue`."""
    from celery import Celery

    from lookout.core.celery_client import app_broker_conf

    app = Celery("prefixed", broker=redis_broker, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": f"{unique('pfx')}:"}
    queue = unique("prefixed-q")
    try:
        app.send_task("sample.add", (1, 2), queue=queue)
        depth = {d.name: d for d in measure(redis_broker, [queue], app_broker_conf(app))}
        assert depth[queue].messages == 1
        assert {d.name: d for d in measure(redis_broker, [queue])}[queue].messages == 0
    finally:
        app.close()
