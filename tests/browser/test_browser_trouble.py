"""Trouble and Failures pages, and the lost/stuck flags on the task pages, in a real chromium.

This module's Lookout judges quickly (stuck after 1 s at the least, lost after 6 s of
silence) so a test sees a stuck task in seconds, not the default minute. Checks wait on
what the page shows, with deadlines; screenshots go to the artifacts folder.
"""
from __future__ import annotations

import re
import signal
from typing import Iterator

import pytest

from helpers.browser import Lookout, get_json, running_lookout
from helpers.support import start_worker, wait_for
from helpers.workers import unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]
FAST = {"LOOKOUT_ALERT_INTERVAL": "1", "LOOKOUT_STUCK_MIN": "1", "LOOKOUT_LOST_AFTER": "6"}


def _expect():
    from playwright.sync_api import expect

    return expect


@pytest.fixture
def web_only(browser, tmp_path):
    """`lookout web` alone on a migrated SQLite store the test fills itself:
    yields (engine, browser context, base URL)."""
    from helpers.browser import free_port
    from helpers.support import VENV_BIN, Process
    from lookout.core.store.db import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'web-only.db'}"
    upgrade(url)
    engine = make_engine(url)
    port = free_port()
    web = Process([str(VENV_BIN / "lookout"), "web", "--database", url, "--port", str(port),
                   "--no-auth"], tmp_path / "web.log")
    context = browser.new_context()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get_json(base + "/readyz")[0] == 200, 30, message="web up")
        yield engine, context, base
    finally:
        context.close()
        engine.dispose()
        assert web.stop() == 0


def shot(page, path) -> None:
    """Screenshot bytes written here: Playwright's own file writing runs on an asyncio
    executor thread that outlives the test and trips the thread-leak check."""
    path.write_bytes(page.screenshot(full_page=True))


@pytest.fixture(scope="module")
def lookout(redis_broker, tmp_path_factory) -> Iterator[Lookout]:
    """browser.running_lookout (no login) with quick lost and stuck thresholds."""
    with running_lookout(redis_broker, tmp_path_factory.mktemp("lookout-trouble"),
                         env=FAST) as running:
        yield running


def test_failures_differing_only_in_numbers_are_one_group(page, lookout, artifacts_dir):
    expect = _expect()
    ids = [lookout.send("sample.fail", f"order {n} not found") for n in (123, 4567, 89)]
    hostile = lookout.send("sample.fail", "<img src=x onerror=window.__pwned=1> 42")
    for task_id in [*ids, hostile]:
        lookout.wait_state(task_id, "FAILURE")

    page.goto("/failures")
    expect(page.locator("nav a.active")).to_have_text("Failures")
    group = page.locator('[data-testid="group-row"]').filter(has_text="order <n> not found")
    expect(group).to_have_count(1)
    expect(group.locator('[data-testid="count"]')).to_have_text("3")
    expect(group.locator('[data-testid="exception-type"]')).to_have_text("ValueError")
    total = page.locator('[data-testid="groups-total"]').inner_text()  # "1 groups" was shown
    expect(page.locator("#groups-unit")).to_have_text("group" if total == "1" else "groups")
    assert "sample.fail" in group.inner_text()
    assert lookout.worker.hostname in group.inner_text()
    fingerprint = group.get_attribute("data-fingerprint")

    group.locator('[data-testid="toggle"]').click()
    detail = page.locator(f'[data-testid="group-detail"][data-fingerprint="{fingerprint}"]')
    expect(detail).to_be_visible()
    expect(detail.locator('[data-testid="sample-traceback"]')).to_contain_text("Traceback")
    expect(detail.locator('[data-testid="sample-traceback"]')).to_contain_text("ValueError")
    expect(detail.locator('[data-testid="sample-exception"]')).to_contain_text("not found")
    expect(detail).to_have_attribute("data-loaded", "true")
    links = detail.locator('[data-testid="task-link"]')
    expect(links).to_have_count(3)
    assert set(links.evaluate_all("as => as.map(a => a.title)")) == set(ids)
    shot(page, artifacts_dir / "failures.png")

    # Markup in a failure is text, in the row and in its sample.
    markup = page.locator('[data-testid="group-row"]').filter(has_text="<img src=x")
    expect(markup.locator('[data-testid="message"]')).to_have_text(
        "<img src=x onerror=window.__pwned=<n>> <n>")
    markup.locator('[data-testid="toggle"]').click()
    expect(page.locator('[data-testid="sample-exception"]').filter(has_text="<img")
           ).to_have_count(1)
    assert page.locator("#groups-body img").count() == 0
    assert page.evaluate("() => window.__pwned") is None

    # The window is in the URL: choosing one changes it, Back restores it.
    page.select_option("#window", "1h")
    expect(page).to_have_url(re.compile(r"window=1h"))
    expect(page.locator("#failures")).to_have_attribute("data-window", "1h")
    expect(group).to_have_count(1)
    expect(detail).to_be_visible()  # an open group stays open across reloads
    page.go_back()
    expect(page.locator("#window")).to_have_value("24h")
    page.goto("/failures?window=7d")
    expect(page.locator("#window")).to_have_value("7d")
    expect(page.locator('[data-testid="group-row"]').filter(has_text="order <n> not found")
           ).to_have_count(1)
    # A new failure shows without waiting for the 30 s reload: the live counts bring it.
    expect(page.locator("body")).to_have_attribute("data-live", "subscribed")
    lookout.wait_state(lookout.send("sample.fail", "order 31337 not found"), "FAILURE")
    again = page.locator('[data-testid="group-row"]').filter(has_text="order <n> not found")
    expect(again.locator('[data-testid="count"]')).to_have_text("4", timeout=15_000)

    # A long message wraps inside its cell (a new user saw it run past the card's edge).
    lookout.wait_state(lookout.send("sample.fail", "y" * 3000), "FAILURE")
    page.reload()
    message = page.locator('[data-testid="group-row"]').filter(has_text="yyyy").locator(
        '[data-testid="message"]')
    expect(message).to_have_count(1)
    card = page.locator("#groups-table").locator("xpath=..")
    assert message.evaluate("m => m.getBoundingClientRect().right") <= card.evaluate(
        "c => c.getBoundingClientRect().right")
    page.watch.assert_clean()


def test_trouble_page_shows_a_stuck_task_and_revokes_it(page, lookout, artifacts_dir):
    expect = _expect()
    quick = [lookout.send("sample.sleep", 0.2) for _ in range(4)]
    for task_id in quick:
        lookout.wait_state(task_id, "SUCCESS")
    slow = lookout.send("sample.sleep", 60)
    lookout.wait_state(slow, "STARTED")

    page.goto("/trouble")
    expect(page.locator("nav a.active")).to_have_text("Trouble")
    expect(page.locator('[data-testid="rules"]')).to_contain_text("not heard for 6 s")
    expect(page.locator('[data-testid="lost-empty"]')).to_have_text("No lost tasks.")
    row = page.locator(f'[data-testid="stuck-row"][data-uuid="{slow}"]')
    # The p95 of sample.sleep comes from the rollups (written every few seconds, cached).
    expect(row).to_be_visible(timeout=60_000)
    expect(row.locator('[data-testid="reason"]')).to_contain_text("p95 runtime")
    assert lookout.worker.hostname in row.inner_text()
    expect(row.locator('[data-testid="retry"]')).to_have_count(0)  # alive: revoke, not retry
    # Running on a live worker: only a terminate stops it, and the button says so.
    expect(row.locator('[data-testid="revoke"]')).to_have_text("Terminate")
    shot(page, artifacts_dir / "trouble-stuck.png")

    # The task page says so too; it is not lost, so it cannot be retried yet.
    page.goto(f"/tasks/{slow}")
    expect(page.locator('[data-testid="stuck-banner"]')).to_contain_text("Stuck:")
    expect(page.locator('[data-testid="lost-banner"]')).to_be_hidden()
    expect(page.locator("#retry-button")).to_be_disabled()
    shot(page, artifacts_dir / "task-stuck.png")

    page.goto("/trouble")
    row.locator('[data-testid="revoke"]').click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(slow)
    expect(dialog).to_contain_text("SIGTERM")
    page.click("#confirm-ok")
    entry = page.locator(f'[data-testid="log-entry"][data-uuid="{slow}"]')
    expect(entry).to_be_visible()
    expect(entry).to_have_attribute("data-state", "REVOKED", timeout=30_000)
    expect(entry.locator('[data-testid="log-state"]')).to_have_text("REVOKED")
    expect(row).to_have_count(0, timeout=30_000)
    lookout.wait_state(slow, "REVOKED")
    shot(page, artifacts_dir / "trouble-revoked.png")
    page.watch.assert_clean()


def test_tasks_lost_only_filter_round_trips_through_url_and_api(page, lookout, artifacts_dir):
    expect = _expect()
    page.goto("/tasks")
    expect(page.locator("body")).to_have_attribute("data-loaded", re.compile(r"\d"))
    with page.expect_response(lambda r: "/api/v1/tasks?" in r.url and "lost=true" in r.url
                              ) as answer:
        page.check('[data-testid="lost-filter"]')
        page.click("button[type=submit]")
    assert answer.value.status == 200
    expect(page).to_have_url(re.compile(r"[?&]lost=true"))
    expect(page.locator("#total")).to_have_text(re.compile(r"^\d+$"))
    api_total = get_json(f"{lookout.url}/api/v1/tasks?lost=true")[1]["total"]
    assert page.locator("#total").inner_text() == str(api_total)

    # The URL alone restores the filter; clearing it leaves the URL.
    page.goto("/tasks?lost=true")
    expect(page.locator('[data-testid="lost-filter"]')).to_be_checked()
    page.uncheck('[data-testid="lost-filter"]')
    page.click("button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"lost="))
    page.go_back()
    expect(page.locator('[data-testid="lost-filter"]')).to_be_checked()
    page.watch.assert_clean()


def test_a_killed_workers_task_is_lost_everywhere_and_retried(page, lookout, redis_broker,
                                                              tmp_path, artifacts_dir):
    expect = _expect()
    hostname = f"{unique('doomed')}@test"
    queue = unique("doomed-q")
    doomed = start_worker(tmp_path, redis_broker, hostname, queues=queue, concurrency=1)
    try:
        task_id = unique("sample-sleep")
        lookout.client.send_task("sample.sleep", args=(120,), task_id=task_id, queue=queue)
        # And one held for its ETA that an operator revoked: the worker would have dropped
        # it at its ETA, so the revoke is still pending when the worker dies.
        revoked_id = unique("sample-add")
        lookout.client.send_task("sample.add", args=(1, 2), task_id=revoked_id, queue=queue,
                                 countdown=300)
        lookout.wait_state(task_id, "STARTED")
        lookout.wait_state(revoked_id, "RECEIVED")
        page.goto(f"/tasks/{revoked_id}")
        page.click("#revoke-button")
        page.click("#confirm-ok")
        expect(page.locator("#revoke-form .control-result")).to_have_attribute(
            "data-status", "200")
        doomed.signal(signal.SIGKILL)
        for lost_id in (task_id, revoked_id):
            wait_for(lambda: get_json(f"{lookout.url}/api/v1/tasks/{lost_id}")[1]["lost"], 30,
                     0.3, "the task to be lost")
    finally:
        doomed.stop()

    page.goto("/tasks?lost=true")
    row = page.locator(f'#tasks-body tr[data-uuid="{task_id}"]')
    expect(row).to_be_visible()
    badge = row.locator('[data-testid="lost-badge"]')
    expect(badge).to_have_text("lost")
    assert hostname in badge.get_attribute("title")
    shot(page, artifacts_dir / "tasks-lost.png")

    page.goto(f"/tasks/{task_id}")
    expect(page.locator('[data-testid="lost-banner"]')).to_contain_text(hostname)
    expect(page.locator("#task-state")).to_have_text("STARTED")
    expect(page.locator("#retry-button")).to_be_enabled()
    expect(page.locator('[data-testid="stuck-banner"]')).to_be_hidden()
    shot(page, artifacts_dir / "task-lost.png")

    # Silent past lost_after, the worker is offline too, though it said no goodbye; the
    # Overview counts it as the Workers table shows it, and says why.
    page.goto("/")
    badge = page.locator(f'#workers-body tr:has(a:text-is("{hostname}")) .badge')
    expect(badge).to_have_text("offline")
    expect(badge).to_have_attribute("title", re.compile(r"^no heartbeat for \d+ s"))
    # And the lost task is on the Overview (a trial found it only on Trouble): counted as
    # trouble, with the one revoked from Lookout counted apart as handled.
    card = page.locator('[data-testid="trouble-card"]')
    expect(card).to_have_attribute("data-problems", re.compile(r"^[1-9]"))
    expect(card).to_have_class(re.compile(r"\bcard-alarm\b"))
    expect(card.locator('[data-testid="trouble-handled"]')).to_have_text(
        re.compile(r"^[1-9]\d* lost, handled from Lookout$"))
    shot(page, artifacts_dir / "overview-trouble.png")
    page.goto("/workers")  # killed, not shut down: the Workers page says which
    expect(page.locator(f'tr[data-hostname="{hostname}"] [data-testid="offline-how"]')
           ).to_have_text(re.compile(r"^went silent"))

    page.goto("/trouble")
    lost = page.locator(f'[data-testid="lost-row"][data-uuid="{task_id}"]')
    expect(lost).to_be_visible()
    expect(lost.locator('[data-testid="reason"]')).to_contain_text(hostname)
    expect(page.locator(f'[data-testid="stuck-row"][data-uuid="{task_id}"]')).to_have_count(0)
    # The revoked one says so, and retrying it asks with the revoke in view.
    revoked = page.locator(f'[data-testid="lost-row"][data-uuid="{revoked_id}"]')
    expect(revoked.locator('[data-testid="revoke-pending"]')).to_be_visible()
    expect(lost.locator('[data-testid="revoke-pending"]')).to_have_count(0)
    expect(revoked.locator('[data-testid="handled"]')).to_contain_text("revoked from Lookout")
    expect(lost.locator('[data-testid="handled"]')).to_have_count(0)
    expect(revoked).to_have_attribute("data-handled", "true")  # dimmed: dealt with
    expect(lost).not_to_have_attribute("data-handled", "true")
    # Running when its worker died: nothing to terminate, and the dialog says what a revoke
    # still does (it once promised a SIGTERM to the dead process).
    expect(lost.locator('[data-testid="revoke"]')).to_have_text("Revoke")
    lost.locator('[data-testid="revoke"]').click()
    expect(page.locator("#confirm-dialog")).to_contain_text("Its worker is gone")
    expect(page.locator("#confirm-dialog")).not_to_contain_text("SIGTERM")
    page.click("#confirm-cancel")
    # Held for its ETA, never started: the broker delivers it again by itself, so no
    # Retry (an on-call trial retried a prefetched task and it ran twice).
    expect(revoked).to_have_attribute("data-redelivery", "true")
    expect(revoked.locator('[data-testid="reason"]')).to_contain_text(
        "goes back to its queue")
    expect(revoked.locator('[data-testid="retry"]')).to_have_count(0)
    expect(lost).not_to_have_attribute("data-redelivery", "true")
    lost.locator('[data-testid="retry"]').click()
    expect(page.locator("#confirm-dialog")).not_to_contain_text("runs it anyway")
    expect(page.locator("#confirm-dialog")).to_contain_text(task_id)
    page.click("#confirm-ok")
    link = lost.locator('[data-testid="new-task-link"]')
    expect(link).to_be_visible()
    new_id = link.inner_text().strip()
    assert new_id and new_id != task_id
    # The result stays in the row across the page's reloads (one follows every action).
    loaded = page.locator("#trouble").get_attribute("data-loaded")
    page.wait_for_function("v => document.getElementById('trouble').dataset.loaded !== v",
                           arg=loaded, timeout=15_000)
    expect(link).to_have_text(new_id)
    expect(page.locator(f'[data-testid="log-entry"][data-uuid="{task_id}"]')).to_contain_text(
        new_id[:8])
    # Still lost (no event closes it), but it says it was dealt with, and how: a retried
    # one was listed as if nobody had (a trial), and an operator could retry it twice.
    expect(lost.locator('[data-testid="handled"]')).to_contain_text(
        f"retried from Lookout as {new_id[:8]}")
    expect(page.locator('[data-testid="lost-handled"]')).to_have_text(
        re.compile(r"^\(2 handled"))
    shot(page, artifacts_dir / "trouble-lost-retried.png")
    page.watch.assert_clean()


def test_alerts_page_adds_a_rule_and_shows_its_firing(page, lookout, artifacts_dir):
    """The module's collector evaluates every second (LOOKOUT_ALERT_INTERVAL=1): a rule
    added on the page fires for the failures sent here and shows as firing."""
    expect = _expect()
    page.goto("/alerts")
    page.wait_for_selector('#alerts[data-loaded="true"]')
    page.fill("#rule-name", "<b>flaky</b> failing")
    page.select_option("#rule-kind", "failure_rate")
    expect(page.locator("#kind-help")).to_contain_text("threshold")
    page.fill("#rule-params", '{"task": "sample.flaky", "min_runs": 2, "threshold": 0.5}')
    page.fill("#rule-cooldown", "1m")
    page.click("#rule-submit")
    expect(page.locator("#rule-result")).to_have_attribute("data-status", "201")
    expect(page.locator('#rules-body tr[data-rule="<b>flaky</b> failing"]')).to_be_visible()
    bad = page.locator("#rule-params")
    bad.fill("{not json")
    page.fill("#rule-name", "other")
    page.click("#rule-submit")
    expect(page.locator("#rule-result")).to_contain_text("not valid JSON")
    for _ in range(3):
        lookout.send("sample.flaky", True)
    expect(page.locator('#firing-body tr[data-status="firing"]')).to_contain_text(
        "sample.flaky", timeout=30_000)
    expect(page.locator("#firing-count")).to_have_text("1")
    # No channel on the rule, no default on the collector: said, not an empty cell.
    expect(page.locator('#firing-body [data-testid="notified-nobody"]')).to_have_text(
        "nobody (no channel)")
    # Every page says an alert fires: a badge on the nav's Alerts link, and the Overview.
    badge = page.locator('header nav [data-testid="alerts-firing-badge"]')
    expect(badge).to_have_text("1", timeout=15_000)
    page.goto("/")
    expect(badge).to_have_text("1", timeout=15_000)
    expect(page.locator("#alerts-firing")).to_have_text("1")
    expect(page.locator("#alerts-card")).to_have_class(re.compile(r"\bcard-alarm\b"))
    page.goto("/alerts")
    assert page.locator("#rules-body b").count() == 0  # markup in a name stays text
    shot(page, artifacts_dir / "alerts.png")
    page.watch.assert_clean()


def test_the_trouble_page_tells_just_started_from_not_listening(web_only):
    """Within a minute of starting, the page said no collector had been hearing the
    broker while both were connected (seen in a trial). Now it says how long they have
    listened, and keeps "no collector is hearing" for when none is."""
    import time

    from helpers.factories import set_collector_status

    expect = _expect()
    engine, context, base = web_only
    set_collector_status(engine, "c1", connected_since=time.time() - 5)
    page = context.new_page()
    page.goto(base + "/trouble")
    note = page.locator("#not-listening")
    expect(note).to_have_text(re.compile(
        r"^Collectors have been hearing the broker for \d+ s only: .* once they have "
        r"listened for 60 s"))
    set_collector_status(engine, "c1", connected=False, connected_since=None,
                         disconnected_since=time.time() - 30)
    page.reload()
    expect(note).to_have_text(re.compile("^No collector is hearing the broker now"))


def test_resolved_alerts_say_why_they_resolved(web_only):
    """A failure-rate alert whose task stopped running resolved as "cleared", read as a
    recovery (a trial): the Alerts page shows each resolution's own words."""
    import time

    from sqlalchemy import insert

    from lookout.core.store.models import Alert

    expect = _expect()
    engine, context, base = web_only
    now = time.time()
    base_row = {"rule_id": 1, "kind": "failure_rate", "status": "resolved", "value": 1.0,
                "fired_at": now - 600, "resolved_at": now - 60, "updated_at": now - 60}
    with engine.begin() as conn:
        conn.execute(insert(Alert), [
            {**base_row, "rule_name": "fails", "key": "proj.gone",
             "message": "proj.gone: 5 of 5 runs failed",
             "resolution": "no run of proj.gone finished in the last 10 min <b>x</b>"},
            {**base_row, "rule_name": "workers", "key": "w1@h", "kind": "worker_offline",
             "message": "worker w1@h was last heard", "resolution": None}])
    page = context.new_page()
    page.goto(base + "/alerts")
    rows = page.locator("#resolved-body tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="proj.gone").locator('[data-testid="resolution"]')) \
        .to_have_text("Resolved: no run of proj.gone finished in the last 10 min <b>x</b>")
    expect(rows.filter(has_text="w1@h").locator('[data-testid="resolution"]')) \
        .to_have_text("Resolved: cleared")
