"""What a deployment mistake or attack looks like from a browser.

A Lookout connected to a broker where no worker speaks says so in its indicator; a page
on another domain that DNS-rebinds to 127.0.0.1 (chromium's host resolver rules play the
attacker's DNS) gets nothing but 400s, not even the Socket.IO stream.
"""
from __future__ import annotations

import re

from typing import Iterator

import pytest

from helpers.browser import CHROMIUM, CHROMIUM_ARGS, free_port, get_json
from helpers.support import VENV_BIN, Process, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def lonely_lookout(private_redis, tmp_path) -> Iterator[str]:
    """`lookout run --no-auth` on a broker no worker uses, warning after 2 s of silence."""
    port = free_port()
    process = Process([str(VENV_BIN / "lookout"), "run", "--no-auth", "--port", str(port),
                       "--broker", f"{private_redis}/5",
                       "--database", f"sqlite:///{tmp_path / 'lookout.db'}"],
                      tmp_path / "lookout.log",
                      env={"LOOKOUT_QUIET_WARNING_AFTER": "2s", "LOOKOUT_ALLOWED_HOSTS": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get_json(url + "/healthz", timeout=2)[0] == 200, 60, interval=0.2,
                 message="lookout up")
        yield url
    finally:
        process.stop()


def test_indicator_warns_when_no_worker_is_heard(browser, lonely_lookout, artifacts_dir):
    from playwright.sync_api import expect

    body = wait_for(lambda: (get_json(lonely_lookout + "/healthz")[1]
                             if get_json(lonely_lookout + "/healthz")[1]["warnings"] else None),
                    20, message="healthz warning")
    assert body["status"] == "warning" and "wrong broker" in body["warnings"][0]
    page = browser.new_page()
    try:
        page.goto(lonely_lookout + "/")
        indicator = page.locator("#connection")
        expect(indicator).to_have_attribute("data-state", "quiet", timeout=20_000)
        expect(indicator).to_have_text("live · no worker heard")
        assert "workers without events?" in indicator.get_attribute("title")
        (artifacts_dir / "quiet.png").write_bytes(page.screenshot())
    finally:
        page.close()


def test_dns_rebinding_gets_only_400s(browser, lonely_lookout, artifacts_dir):
    """evil.example resolves to 127.0.0.1: same origin as itself, but not an allowed Host."""
    port = lonely_lookout.rsplit(":", 1)[1]
    evil = f"http://evil.example:{port}"
    # A second chromium of the module's Playwright, whose DNS is the attacker's.
    rebound = browser.browser_type.launch(
        executable_path=CHROMIUM, headless=True,
        args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"])
    try:
        page = rebound.new_page()
        response = page.goto(evil + "/")
        assert response.status == 400
        assert "is not allowed here" in page.content()
        # What the attacker's script would try next, from its own origin.
        results = page.evaluate("""async () => {
            const out = {};
            for (const [name, path, init] of [
                    ["tasks", "/api/v1/tasks", {}],
                    ["token", "/api/v1/tokens", {method: "POST",
                     headers: {"Content-Type": "application/json"},
                     body: JSON.stringify({name: "pwned", role: "admin"})}],
                    ["socket", "/socket.io/?EIO=4&transport=polling", {}]]) {
                const r = await fetch(path, init);
                out[name] = r.status;
            }
            return out;
        }""")
        (artifacts_dir / "rebinding.png").write_bytes(page.screenshot())
    finally:
        rebound.close()
    assert results["tasks"] == 400 and results["token"] == 400, results
    assert results["socket"] == 400, results
    # The same Lookout still answers its own name.
    assert get_json(lonely_lookout + "/api/v1/tasks")[0] == 200


def test_a_message_queue_outage_is_shown_and_its_gap_filled_after(browser, redis_broker,
                                                                 tmp_path, artifacts_dir):
    """Collector and web apart, linked by a message-queue Redis that goes away: the page
    said "live" while nothing came, and never showed what happened meanwhile. Now it
    says "message queue unreachable" (from /healthz; "live updates stalled" when only the
    beats stop); when beats come back it reloads from the API, and the task run
    meanwhile is there. "live" waits for that first beat: a green /healthz alone once
    turned it back while the reload was still seconds away."""
    from playwright.sync_api import expect

    from helpers.workers import launch_worker, send, task_client, unique

    queue_port = free_port()
    queue_url = f"redis://127.0.0.1:{queue_port}/0"

    def message_queue(label: str) -> Process:
        server = Process(["redis-server", "--port", str(queue_port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                         tmp_path / f"queue-{label}.log")
        server.wait_output("Ready to accept connections", timeout=20)
        return server

    queue = message_queue("first")
    lookout = str(VENV_BIN / "lookout")
    database = f"sqlite:///{tmp_path / 'lookout.db'}"
    common = ["--database", database, "--message-queue", queue_url]
    worker = launch_worker(tmp_path, redis_broker)
    port = free_port()
    collector = Process([lookout, "collect", "--broker", redis_broker, *common],
                        tmp_path / "collect.log",
                        env={"LOOKOUT_COLLECTOR_NAME": unique("mq-outage")})
    web = Process([lookout, "web", "--port", str(port), "--no-auth", *common],
                  tmp_path / "web.log", env={"LOOKOUT_ALLOWED_HOSTS": ""})
    url = f"http://127.0.0.1:{port}"
    page = browser.new_page()
    try:
        wait_for(lambda: get_json(url + "/healthz", timeout=2)[0] == 200, 60, interval=0.2,
                 message="collector and web up")
        page.goto(f"{url}/tasks?queue={worker.queue}")
        indicator = page.locator("#connection")
        expect(indicator).to_have_attribute("data-state", "live", timeout=20_000)

        queue.stop()
        # Both ends find the queue gone: /healthz says so, and the indicator names it.
        expect(indicator).to_have_text("message queue unreachable", timeout=30_000)
        expect(indicator).to_have_attribute("title", re.compile(
            "message queue unreachable from this web process: live updates stopped"))
        (artifacts_dir / "message-queue-down.png").write_bytes(page.screenshot())
        with task_client(redis_broker) as app:
            meanwhile = send(app, worker, "sample.add", 1, 2)
        wait_for(lambda: get_json(f"{url}/api/v1/tasks/{meanwhile}")[1].get("state")
                 == "SUCCESS", 30, message="the task stored during the outage")
        assert page.locator(f"#tasks-body tr[data-uuid='{meanwhile}']").count() == 0

        queue = message_queue("again")
        expect(indicator).to_have_attribute("data-state", "live", timeout=90_000)
        expect(page.locator(f"#tasks-body tr[data-uuid='{meanwhile}']")).to_be_visible(timeout=15_000)
    finally:
        page.close()
        web.stop()
        collector.stop()
        worker.process.stop()
        queue.stop()


def test_beats_that_never_arrive_say_live_updates_stalled(browser, redis_broker, tmp_path):
    """Both ends reach the queue, yet nothing arrives: here the collector and the web
    process were given different channels (LOOKOUT_MESSAGE_QUEUE_CHANNEL), a mistake
    /healthz cannot see. The page's own beat watch says so."""
    from playwright.sync_api import expect

    from helpers.workers import unique

    lookout = str(VENV_BIN / "lookout")
    common = ["--database", f"sqlite:///{tmp_path / 'lookout.db'}",
              "--message-queue", redis_broker]
    port = free_port()
    collector = Process([lookout, "collect", "--broker", redis_broker, *common],
                        tmp_path / "collect.log",
                        env={"LOOKOUT_COLLECTOR_NAME": unique("stall"),
                             "LOOKOUT_MESSAGE_QUEUE_CHANNEL": unique("collector-side")})
    web = Process([lookout, "web", "--port", str(port), "--no-auth", *common],
                  tmp_path / "web.log",
                  env={"LOOKOUT_MESSAGE_QUEUE_CHANNEL": unique("web-side")})
    page = browser.new_page()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_json(url + "/healthz", timeout=2)[0] == 200, 60, interval=0.2,
                 message="collector and web up")
        page.goto(url + "/tasks")
        indicator = page.locator("#connection")
        expect(indicator).to_have_attribute("data-state", "live", timeout=20_000)
        expect(indicator).to_have_text("live updates stalled", timeout=30_000)
        expect(indicator).to_have_attribute("title", re.compile(
            "nothing from the collector for 10 s"))
        assert get_json(url + "/healthz")[0] == 200  # nothing /healthz could have said
    finally:
        page.close()
        web.stop()
        collector.stop()


def test_throughput_opens_with_its_past_and_adds_collectors_shares(browser, redis_broker,
                                                                  tmp_path, artifacts_dir):
    """The chart filled only from what arrived after the page opened: empty for a
    minute, just when someone opened the dashboard to look. And two collectors on one
    RabbitMQ queue each push their share: the chart zig-zagged between the shares and
    the rate shown was one collector's. Here a status row carries a collector's last
    pushes (what collectors/status.py writes), and two real publishers push 4/s and 6/s
    through the message queue a quarter second apart: the page shows 10/s."""
    import time
    from collections import Counter

    from helpers.factories import set_collector_status
    from helpers.workers import unique
    from lookout.collectors.message_queue import external_emitter
    from lookout.collectors.push import LivePublisher
    from lookout.collectors.writer import BatchSummary
    from lookout.core.store import db

    channel = unique("shares")
    database = f"sqlite:///{tmp_path / 'lookout.db'}"
    port = free_port()
    web = Process([str(VENV_BIN / "lookout"), "web", "--port", str(port), "--no-auth",
                   "--database", database, "--message-queue", redis_broker],
                  tmp_path / "web.log", env={"LOOKOUT_MESSAGE_QUEUE_CHANNEL": channel,
                                              "LOOKOUT_ALLOWED_HOSTS": ""})
    url = f"http://127.0.0.1:{port}"
    emitter = external_emitter(redis_broker, channel)
    page = browser.new_page()
    engine = db.make_engine(database)
    chart = "() => Chart.getChart(document.getElementById('rate-chart')).data.datasets[0].data"
    try:
        wait_for(lambda: get_json(url + "/readyz", timeout=2)[0] == 200, 60, interval=0.2,
                 message="web up")
        now = time.time()
        set_collector_status(engine, "earlier", stats={"live_points": [
            [now - 20 + 0.5 * i, 7.0, 30.0] for i in range(40)]})
        page.goto(url + "/")
        page.wait_for_function(chart + ".filter(v => v === 7).length >= 35")
        assert page.evaluate(chart)[0] is None  # before the first push: a gap, not 0

        set_collector_status(engine, "earlier", connected=False, stats={"stopped": True})
        clock = [time.time()]
        publishers = []
        for name, per_tick in (("rabbit-a", 2), ("rabbit-b", 3)):
            publisher = LivePublisher(emitter, clock=lambda: clock[0])
            publisher.source = name
            publishers.append((publisher, per_tick))
        rate = page.locator("#rate-now")
        deadline = time.monotonic() + 30
        while rate.inner_text() != "10" and time.monotonic() < deadline:
            for publisher, per_tick in publishers:  # 4/s and 6/s, a quarter second apart
                clock[0] += 0.25
                publisher(BatchSummary(events=10, states=Counter({"SUCCESS": per_tick})))
                publisher.flush()
                page.wait_for_timeout(250)  # paces the pushes as the push thread does
        assert rate.inner_text() == "10"
        for _ in range(8):  # four more ticks each: every new point is the sum
            for publisher, per_tick in publishers:
                clock[0] += 0.25
                publisher(BatchSummary(events=10, states=Counter({"SUCCESS": per_tick})))
                publisher.flush()
                page.wait_for_timeout(250)
        live = page.evaluate(chart)[-8:]
        assert live.count(10) >= 6 and not {4, 6} & set(live), live
        (artifacts_dir / "throughput-shares.png").write_bytes(page.screenshot())
    finally:
        page.close()
        web.stop()
        engine.dispose()
