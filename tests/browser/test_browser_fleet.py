"""Workers, Queues, Retries and Schedules pages in a real chromium against `lookout run`.

The pages poll the JSON API, so each check waits on what the page shows (with a
deadline) rather than on time; screenshots of every page go to the artifacts folder.
"""
from __future__ import annotations

import re

import pytest

from helpers.browser import free_port, get_json
from helpers.support import VENV_BIN, Process, wait_for
from helpers.workers import launch_worker, task_client, unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]



def shot(page, path) -> None:
    """Screenshot bytes written here: Playwright's own file writing runs on an asyncio
    executor thread that outlives the test and trips the thread-leak check."""
    path.write_bytes(page.screenshot(full_page=True))


def test_worker_goes_online_then_offline(page, lookout, redis_broker, tmp_path,
                                         artifacts_dir):
    worker = launch_worker(tmp_path, redis_broker)
    try:
        page.goto("/workers")
        row = page.locator(f'tr[data-hostname="{worker.hostname}"]')
        row.wait_for()
        page.wait_for_function(
            "h => document.querySelector(`tr[data-hostname=\"${h}\"]`)"
            "?.dataset.status === 'online'", arg=worker.hostname)
        assert row.locator('[data-testid="health"]').inner_text() == "online"
        shot(page, artifacts_dir / "workers-online.png")
    finally:
        worker.process.stop()
    page.wait_for_function(
        "h => document.querySelector(`tr[data-hostname=\"${h}\"]`)"
        "?.dataset.status === 'offline'", arg=worker.hostname, timeout=30_000)
    assert row.locator('[data-testid="health"]').inner_text() == "offline"
    # Stopped (warm shutdown: it said goodbye), not crashed: the page says which.
    assert row.locator('[data-testid="offline-how"]').inner_text() == "shut down"
    shot(page, artifacts_dir / "workers-offline.png")
    assert page.watch.errors == []


def test_worker_detail_shows_inspect(page, lookout, artifacts_dir):
    page.goto(f"/workers/{lookout.worker.hostname}")
    page.wait_for_selector('#worker[data-inspected="answered"]')
    assert page.locator('[data-testid="concurrency"]').inner_text() == "2"
    assert page.locator("#queues-body").inner_text().startswith(lookout.worker.queue)
    assert "sample.add" in page.locator("#registered-body").inner_text()
    shot(page, artifacts_dir / "worker.png")
    assert page.watch.errors == []


def test_queue_depth_rises_while_nobody_consumes(page, lookout, redis_broker,
                                                 artifacts_dir):
    lonely = unique("lonely")
    messages = f'tr[data-queue="{lonely}"] [data-testid="messages"]'
    # Not (1, 2): sends with those arguments are runs of helpers/beat_app.py's tick entry,
    # and these, never received, made test_schedules_pages_with_app see that entry late.
    with task_client(redis_broker) as client:
        client.send_task("sample.add", args=(5, 6), queue=lonely)
        page.goto("/queues")
        # The queue is known once the collector has stored its task-sent event.
        page.wait_for_function("s => document.querySelector(s)?.textContent === '1'",
                               arg=messages, timeout=30_000)
        for _ in range(3):
            client.send_task("sample.add", args=(5, 6), queue=lonely, priority=9)
        page.wait_for_function("s => document.querySelector(s)?.textContent === '4'",
                               arg=messages)
    assert "p9: 3" in page.locator(f'tr[data-queue="{lonely}"]').inner_text()
    # Nobody consumes it: the row says so instead of looking like any other (a trial).
    from playwright.sync_api import expect
    stranded = page.locator(f'tr[data-queue="{lonely}"]')
    expect(stranded).to_have_attribute("data-stranded", "true")
    expect(stranded).to_contain_text("no consumer: no worker takes these messages")
    assert page.locator(f'tr[data-queue="{lookout.worker.queue}"][data-stranded]').count() == 0
    # The collector's QueueSampler stores samples every 10 s; the chart draws them.
    page.wait_for_function(
        "() => Number(document.getElementById('queues').dataset.maxDepth) > 0", timeout=45_000)
    shot(page, artifacts_dir / "queues.png")
    assert page.watch.errors == []


def test_retries_and_schedules_pages(page, lookout, artifacts_dir):
    from playwright.sync_api import expect

    waiting = lookout.send("sample.retry", countdown=120)
    task_id = lookout.send("sample.retry", countdown=0.1)
    lookout.wait_state(task_id, "SUCCESS")
    # Known limit (see the README): the worker's task-received for the retry message can
    # be stamped after its task-retried, and the later event wins: RECEIVED (with an
    # eta) instead of RETRY. Wait for the retry itself, then list it if it shows RETRY.
    state = wait_for(lambda: _retried_state(lookout, waiting), 30, interval=0.2,
                     message=f"{waiting} retried")
    page.goto("/retries")
    if state == "RETRY":
        page.wait_for_selector(f'#retrying-body tr[data-uuid="{waiting}"]')
    page.wait_for_function(
        "() => document.getElementById('rates-body').textContent.includes('sample.retry')",
        timeout=30_000)
    shot(page, artifacts_dir / "retries.png")
    # The task succeeded after its retries: its exception is labelled the last retry's.
    page.goto(f"/tasks/{task_id}")
    expect(page.locator("#error-title")).to_have_text("Exception of the last retry")
    expect(page.locator("#task-state")).to_have_text("SUCCESS")
    assert page.locator("#traceback-details").get_attribute("open") is None
    page.goto("/schedules")
    page.wait_for_selector('#schedules[data-loaded="unconfigured"]')
    assert "-A" in page.locator("#how-to").inner_text()
    shot(page, artifacts_dir / "schedules.png")
    # A run a few seconds past due is "due now", not red: beat sends it on its next tick
    # and its events take a moment (a trial saw every healthy 10 s entry flash red).
    due = page.evaluate("""() => {
        var S = window.LookoutSchedules, now = Date.now() / 1000;
        var soon = S.relSpan(now - 3, "due", {}, 10), late = S.relSpan(now - 30, "due", {}, 10);
        return [soon.textContent, soon.classList.contains("overdue"), late.textContent,
                late.classList.contains("overdue")];
    }""")
    assert due == ["due now", False, "overdue by 30s", True], due
    assert page.watch.errors == []


def test_schedules_pages_with_app(page, lookout, redis_broker, tmp_path, artifacts_dir):
    """A second web process on the same store, given an app with awkward beat entries."""
    from helpers.beat_app import HOSTILE

    ran = lookout.send("sample.add", 1, 2)  # the tick entry's task and arguments
    lookout.wait_state(ran, "SUCCESS")
    port = free_port()
    web = Process([str(VENV_BIN / "lookout"), "web", "-A", "helpers.beat_app", "--broker",
                   redis_broker, "--database", lookout.database_url, "--port", str(port),
                   "--no-auth"], tmp_path / "web.log",
                  env={"LOOKOUT_SECRET_KEY": "x", "BEAT_TEST_QUEUE": lookout.worker.queue})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_json(url + "/api/v1/schedules", timeout=2)[0] == 200, 30,
                 interval=0.2, message="lookout web -A answering")
        page.goto(url + "/schedules")
        tick = page.locator('tr[data-entry="app/tick-every-5s"]')
        tick.wait_for()
        assert "every 5 seconds" in tick.locator('[data-testid="schedule"]').inner_text()
        assert "SUCCESS" in tick.locator('[data-testid="last-run"]').inner_text()
        assert tick.get_attribute("data-status") == "ok", tick.inner_text()
        hostile = page.locator("#schedules-body tr").filter(has_text=HOSTILE)
        assert hostile.locator('[data-testid="entry-link"]').inner_text() == HOSTILE
        assert "(Asia/Shanghai)" in hostile.locator('[data-testid="schedule"]').inner_text()
        # Next run in the header's zone, as the row's other times; a crontab's own zone's
        # wall time beside it (a trial read one row in three zones); none for an interval.
        next_run = hostile.locator('[data-testid="next-run"]')
        assert re.match(r"^(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d", next_run.inner_text())
        assert re.search(r"= \d{4}-\d\d-\d\d 08:00:00 CST \(Asia/Shanghai\)$", next_run.locator(
            '[data-testid="next-run-own-zone"]').inner_text())
        assert tick.locator('[data-testid="next-run-own-zone"]').count() == 0
        assert page.locator("#schedules-body img").count() == 0
        assert page.evaluate("() => window.__pwned") is None
        shot(page, artifacts_dir / "schedules-with-app.png")

        page.locator('tr[data-entry="app/reports/daily"] [data-testid="entry-link"]').click()
        page.wait_for_selector('#entry[data-loaded="true"]')
        page.locator("#run-button").click()
        page.locator("#confirm-ok").click()
        link = page.locator('[data-testid="run-task-link"]')
        link.wait_for()
        task_id = link.inner_text().strip()
        lookout.wait_state(task_id, "SUCCESS")
        page.wait_for_selector(f'#runs-body tr[data-uuid="{task_id}"]', timeout=30_000)
        shot(page, artifacts_dir / "schedule-entry.png")

        page.goto(url + "/")
        card = page.locator('[data-testid="schedules-card"]')
        card.wait_for()
        wait_for(lambda: page.locator('[data-testid="schedules-ok"]').inner_text().strip()
                 not in ("", "–", "0"), 20, 0.2, "schedule counts on the Overview")
    finally:
        web.stop()
    page.watch.assert_clean()


def _retried_state(lookout, task_id: str) -> str | None:
    """The task's state once its timeline holds a task-retried, else None."""
    status, body = get_json(f"{lookout.url}/api/v1/tasks/{task_id}")
    if status != 200 or not any(e["type"] == "task-retried" for e in body["timeline"]):
        return None
    assert body["state"] in ("RETRY", "RECEIVED"), body["state"]
    return body["state"]


def test_entries_missed_together_say_beat_may_be_down(browser, redis_broker, tmp_path,
                                                      artifacts_dir):
    """The Schedules page listed entries turning missed one by one and never said what
    that points at (an on-call trial). Here no beat runs at all: with a 1 s grace both
    entries go missed within seconds, and the page asks whether beat is running."""
    from playwright.sync_api import expect

    (tmp_path / "nobeat_app.py").write_text(
        "from celery import Celery\n"
        "app = Celery('nobeat', set_as_current=False)\n"
        "app.conf.beat_schedule = {n: {'task': 'proj.' + n, 'schedule': 2.0}\n"
        "                          for n in ('sweep', 'sync')}\n")
    port = free_port()
    web = Process([str(VENV_BIN / "lookout"), "web", "-A", "nobeat_app", "--broker",
                   redis_broker, "--database", f"sqlite:///{tmp_path / 'lookout.db'}",
                   "--port", str(port), "--no-auth"], tmp_path / "web.log",
                  env={"PYTHONPATH": str(tmp_path), "LOOKOUT_ALLOWED_HOSTS": ""})
    page = browser.new_page()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_json(url + "/api/v1/schedules", timeout=2)[0] == 200, 30,
                 interval=0.2, message="lookout web -A answering")
        page.goto(url + "/schedules")
        page.locator('tr[data-entry="app/sweep"]').wait_for()
        banner = page.locator('[data-testid="beat-down"]')
        expect(banner).to_have_count(0)  # nothing missed yet
        for name in ("sweep", "sync"):  # as an operator would, from the entry's page
            status = page.evaluate(
                """name => fetch('/api/v1/schedules/app/' + name + '/thresholds', {
                     method: 'PUT', credentials: 'same-origin',
                     headers: {'Content-Type': 'application/json', 'X-CSRF-Token':
                       document.querySelector('meta[name="csrf-token"]').content},
                     body: JSON.stringify({grace: 1})}).then(r => r.status)""", name)
            assert status == 200
        expect(banner).to_have_text(re.compile(
            r"^2 of 2 app entries missed at once: is beat itself running\? \(sweep, sync\)$"),
            timeout=30_000)
        shot(page, artifacts_dir / "beat-down.png")
    finally:
        page.close()
        web.stop()
