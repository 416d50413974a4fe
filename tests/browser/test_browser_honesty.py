"""What the pages say about a task must not mislead an on-call SRE: a lost task is not
"running", a finished task's eta is not a schedule, and the Overview's Received counter
says it counts receipts (retries included), not tasks. Found in outside trials.

The tasks and workers go straight into the module Lookout's store (a worker long gone is
not something a test can wait for); the pages then read them as they would any other.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers.factories import add_task, add_worker
from helpers.workers import unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _expect():
    from playwright.sync_api import expect

    return expect


def shot(page, path: Path) -> None:
    """Screenshot bytes written here (Playwright's own file writing leaks a thread)."""
    path.write_bytes(page.screenshot(full_page=True))


@pytest.fixture
def store(lookout) -> Iterator[Any]:
    """An engine on the module Lookout's own store."""
    from lookout.core.store.db import make_engine

    engine = make_engine(lookout.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _field_label(page, name: str):
    """The <dt> of a field on a task's page, by the label's first word."""
    return page.locator("#fields dt", has_text=re.compile(rf"^{name}\b"))


def test_a_lost_task_is_not_said_to_be_running(page, lookout, store, artifacts_dir):
    expect = _expect()
    now = time.time()
    gone = f"{unique('gone')}@test"
    add_worker(store, gone, online=False, last_heartbeat=now - 900, last_event_ts=now - 900)
    task = add_task(store, uuid=unique("lost"), name="sample.sleep", state="STARTED",
                    worker=gone, queue=lookout.worker.queue, timestamp=now - 725,
                    received_at=now - 725, started_at=now - 720, state_ts=now - 720,
                    updated_at=now - 720)
    assert lookout.api(f"/api/v1/tasks/{task['uuid']}")["lost"]

    page.goto(f"/tasks/{task['uuid']}")
    expect(page.locator('[data-testid="lost-banner"]')).to_contain_text(gone)
    running = page.locator("#running")
    expect(running).to_have_text(re.compile(r"^ \(worker lost; started 12m \d+s ago\)$"))
    assert "running" not in running.inner_text()
    revoke = page.locator("#revoke-form")
    if revoke.count():  # controls are shown to operators only
        confirm = revoke.get_attribute("data-confirm")
        assert "Its worker is gone" in confirm and "running now" not in confirm, confirm
        expect(page.locator("#terminate-button")).to_have_attribute(
            "title", re.compile(r"^Its worker is gone: Terminate reaches the task only if"))
    shot(page, artifacts_dir / "task-lost.png")

    # Neither the list nor the Trouble page calls it running either.
    page.goto(f"/tasks?queue={lookout.worker.queue}&lost=true")
    row = page.locator(f'#tasks-body tr[data-uuid="{task["uuid"]}"]')
    expect(row.locator('[data-testid="lost-badge"]')).to_have_text("lost")
    assert "running" not in row.inner_text().lower()
    page.goto("/trouble")
    lost = page.locator(f'[data-testid="lost-row"][data-uuid="{task["uuid"]}"]')
    expect(lost.locator('[data-testid="reason"]')).to_contain_text(gone)
    assert "running" not in lost.locator("td").nth(4).inner_text().lower()
    page.watch.assert_clean()


def test_a_finished_tasks_eta_is_its_last_attempts_not_a_schedule(page, lookout, store,
                                                                   artifacts_dir):
    expect = _expect()
    now = time.time()
    failed = add_task(store, uuid=unique("failed-after-retries"), name="sample.flaky",
                      state="FAILURE", retries=3, queue=lookout.worker.queue,
                      timestamp=now - 600, received_at=now - 600, started_at=now - 300,
                      failed_at=now - 290, state_ts=now - 290, updated_at=now - 290,
                      eta=now - 300, expires=now + 3600, exception="ValueError('flaky')")
    waiting = add_task(store, uuid=unique("retrying"), name="sample.flaky", state="RETRY",
                       retries=1, queue=lookout.worker.queue, timestamp=now - 60,
                       received_at=now - 60, started_at=now - 59, retried_at=now - 58,
                       state_ts=now - 58, updated_at=now - 58, eta=now + 600,
                       expires=now + 3600)

    page.goto(f"/tasks/{failed['uuid']}")
    expect(page.locator("#task")).to_have_attribute("data-state", "FAILURE")
    eta = _field_label(page, "eta")
    expect(eta).to_have_text("eta (last attempt)")
    expect(eta.locator('[data-testid="eta-label"]')).to_have_attribute(
        "title", re.compile(r"last attempt was scheduled.*\(FAILURE\): nothing is scheduled"))
    expect(_field_label(page, "expires")).to_have_text("expires (last attempt)")
    # An exception without a traceback (NotRegistered, say) shows no empty block.
    expect(page.locator("#exception")).to_have_text("ValueError('flaky')")
    expect(page.locator("#traceback-details")).to_be_hidden()
    shot(page, artifacts_dir / "task-failed-eta.png")

    # Still to come: a plain eta, as before.
    page.goto(f"/tasks/{waiting['uuid']}")
    expect(page.locator("#task")).to_have_attribute("data-state", "RETRY")
    expect(_field_label(page, "eta")).to_have_text("eta")
    expect(_field_label(page, "expires")).to_have_text("expires")

    # The list greys the ended task's eta and says why; the waiting one's stays plain.
    page.goto(f"/tasks?queue={lookout.worker.queue}&name=sample.flaky")
    ended = page.locator(f'#tasks-body tr[data-uuid="{failed["uuid"]}"] '
                         '[data-testid="eta-ended"]')
    expect(ended).to_have_attribute("title", re.compile(r"last attempt's eta.*\(FAILURE\)"))
    coming = page.locator(f'#tasks-body tr[data-uuid="{waiting["uuid"]}"]')
    expect(coming.locator('[data-testid="eta"]')).to_be_visible()
    assert coming.locator('[data-testid="eta-ended"]').count() == 0
    page.watch.assert_clean()


def test_overview_received_counter_says_it_counts_every_retry(page, lookout, artifacts_dir):
    expect = _expect()
    page.goto("/")
    card = page.locator('[data-testid="received-card"]')
    expect(card.locator("h2")).to_have_text("Received")
    expect(card.locator('[data-testid="received-note"]')).to_have_text("incl. every retry")
    expect(card).to_have_attribute("title", re.compile(
        r"task-received events, not tasks: each retry attempt is received again"))
    expect(card.locator("#count-received")).to_have_text(re.compile(r"^\d+$"))
    # The note sits right under the number, before the revoked and rejected counts.
    assert card.locator("p").all_inner_texts()[1] == "incl. every retry"
    shot(page, artifacts_dir / "overview.png")
    page.watch.assert_clean()


def test_overview_counts_stay_right_when_the_stats_api_answers_from_its_cache(
        page, lookout, artifacts_dir):
    """/api/v1/stats keeps a costly answer for up to a minute (cost_cache.py), and the page
    adds pushed counts to each read. Adding only those pushed after the read lost what was
    pushed between the answer's `until` and the read: under load the cards fell back by
    hundreds at every re-read (seen in a trial). Here every re-read is answered with the
    first answer, as the cache would, so only the pushes since its `until` can make up
    the five tasks run in between."""
    import json

    expect = _expect()
    first: dict[str, Any] = {}

    def cached_stats(route):
        if "body" in first:  # what the cache would still answer
            first["served"] += 1
            route.fulfill(status=200, content_type="application/json", body=first["body"])
            return
        response = route.fetch()
        first.update(body=response.text(), served=0)
        route.fulfill(response=response)

    page.clock.install()  # time flows as usual; fast_forward runs the 30 s re-read now
    page.route(re.compile(r"/api/v1/stats\?"), cached_stats)
    page.goto("/")
    expect(page.locator("body")).to_have_attribute("data-live", "subscribed")
    succeeded = page.locator("#count-succeeded")
    expect(succeeded).to_have_text(re.compile(r"^\d+$"))
    base = json.loads(first["body"])["totals"]["counts"]["succeeded"]
    expect(succeeded).to_have_text(str(base))

    ids = [lookout.send("sample.add", i, i) for i in range(5)]
    for task_id in ids:
        lookout.wait_state(task_id, "SUCCESS")
    expect(succeeded).to_have_text(str(base + 5))  # pushed

    page.clock.fast_forward(31_000)
    deadline = time.monotonic() + 15
    while first["served"] == 0 and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # route handlers run while Playwright waits
    assert first["served"] >= 1, "the overview did not read the stats again"
    expect(succeeded).to_have_text(str(base + 5))
    page.watch.assert_clean()


def test_a_call_with_keyword_arguments_only_shows_them_in_the_list(page, lookout, store):
    expect = _expect()
    now = time.time()
    task = add_task(store, uuid=unique("kw-only"), name="sample.notify", state="SUCCESS",
                    queue=lookout.worker.queue, timestamp=now, received_at=now,
                    args="()", kwargs="{'to': 'ops'}")
    page.goto(f"/tasks?queue={lookout.worker.queue}&name=sample.notify")
    cell = page.locator(f'#tasks-body tr[data-uuid="{task["uuid"]}"] td').nth(3)
    expect(cell).to_have_text("{'to': 'ops'}")
    page.watch.assert_clean()
