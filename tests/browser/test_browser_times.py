"""One time zone for every time shown, in a real chromium against a real Lookout.

The browser runs in Asia/Kathmandu (UTC+05:45, no daylight saving), so its local times
differ from UTC by an offset no rounding hides. Checked: the header's UTC / Local switch
changes what the tasks list and a task's page show and is remembered across reloads; a
time copied from the screen into the tasks list's filters finds the task (filters are read
in the zone shown and sent with an explicit offset); the quick ranges fill `after` and the
URL.
"""
from __future__ import annotations

import math
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers.browser import PageWatch, screenshot_writer
from helpers.workers import unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BROWSER_ZONE = "Asia/Kathmandu"
KATHMANDU = timezone(timedelta(hours=5, minutes=45))
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _expect():
    from playwright.sync_api import expect

    return expect


def shot(page, path: Path) -> None:
    """Screenshot bytes written here (Playwright's own writer thread outlives the test)."""
    path.write_bytes(page.screenshot(full_page=True))


def shown(epoch: float, zone: timezone) -> str:
    """What Lookout's fmtTime shows for `epoch` in `zone`: milliseconds truncated as a JS
    Date does; the date only when it is not today there."""
    moment = (EPOCH + timedelta(milliseconds=math.floor(epoch * 1000))).astimezone(zone)
    text = moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    if moment.date() != datetime.now(zone).date():
        text = moment.strftime("%Y-%m-%d ") + text
    return text


@pytest.fixture
def page(browser, lookout, artifacts_dir: Path) -> Iterator[Any]:
    """conftest's `page` (errors, dialogs and CSP violations in `page.watch`), with the
    browser's own zone set to BROWSER_ZONE."""
    context = browser.new_context(base_url=lookout.url, viewport={"width": 1400, "height": 1000},
                                  timezone_id=BROWSER_ZONE)
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch = PageWatch()

    def on_dialog(dialog):
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    page.on("console", lambda message: watch.csp.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.watch = watch
    page.screenshot = screenshot_writer(page.screenshot)
    try:
        yield page
    finally:
        try:
            shot(page, artifacts_dir / "final.png")
        finally:
            context.close()


def _finished(lookout, marker: str) -> dict:
    task_id = lookout.send("sample.echo", marker, marker=marker)
    lookout.wait_state(task_id, "SUCCESS")
    return lookout.api(f"/api/v1/tasks/{task_id}")


def _received_cell(page, task_id: str):
    return page.locator(f"#tasks-body tr[data-uuid='{task_id}'] td:nth-child(7)")


def _field(page, name: str):
    """The value shown for a field of a task's page."""
    return page.locator("#fields dt", has_text=re.compile(f"^{name}$")).locator(
        "xpath=following-sibling::dd[1]")


def test_zone_switch_changes_every_time_and_is_remembered(page, lookout, artifacts_dir):
    expect = _expect()
    marker = unique("tz")
    task = _finished(lookout, marker)
    switch = page.locator("#tz-select")

    page.goto(f"/tasks?queue={lookout.worker.queue}&q={marker}")
    cell = _received_cell(page, task["uuid"])
    expect(switch).to_have_value("local")
    expect(switch.locator("option[value='local']")).to_have_text("Local (UTC+05:45)")
    expect(cell).to_have_text(shown(task["received_at"], KATHMANDU))
    expect(page.locator("#tasks-table thead")).to_contain_text("Received (UTC+05:45)")
    title = cell.locator("time").get_attribute("title")
    assert title.startswith(cell.locator("time").get_attribute("datetime"))
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?\+05:45 · Local", title), title
    shot(page, artifacts_dir / "tasks-local.png")
    # Not today: with its date, in the zone shown (a moment late on 2 January UTC is the
    # 3rd in Kathmandu).
    assert page.evaluate("() => Lookout.fmtTime(1767396245.678)") == "2026-01-03 05:09:05.678"

    # UTC: the page reloads and shows UTC wall times, here and on every page after.
    with page.expect_navigation():
        switch.select_option("utc")
    expect(switch).to_have_value("utc")
    expect(cell).to_have_text(shown(task["received_at"], timezone.utc))
    expect(page.locator("#tasks-table thead")).to_contain_text("Received (UTC)")
    assert cell.locator("time").get_attribute("datetime").endswith("Z")
    assert page.evaluate("() => localStorage.getItem('lookout.tz')") == "utc"
    assert page.evaluate("() => Lookout.fmtTime(1767396245.678)") == "2026-01-02 23:24:05.678"
    shot(page, artifacts_dir / "tasks-utc.png")

    page.reload()
    expect(switch).to_have_value("utc")
    expect(cell).to_have_text(shown(task["received_at"], timezone.utc))
    page.goto(f"/tasks/{task['uuid']}")
    expect(_field(page, "received_at")).to_have_text(shown(task["received_at"], timezone.utc))
    expect(switch).to_have_value("utc")
    shot(page, artifacts_dir / "task-utc.png")

    # And back: local wall times again.
    with page.expect_navigation():
        switch.select_option("local")
    expect(_field(page, "received_at")).to_have_text(shown(task["received_at"], KATHMANDU))
    assert page.evaluate("() => localStorage.getItem('lookout.tz')") == "local"
    page.watch.assert_clean()


@pytest.mark.parametrize("zone", ["local", "utc"])
def test_times_typed_as_shown_find_the_task(page, lookout, artifacts_dir, zone):
    expect = _expect()
    marker = unique("typed")
    first = _finished(lookout, marker)
    second = _finished(lookout, marker)
    base = f"/tasks?queue={lookout.worker.queue}&q={marker}"
    page.goto(base)
    page.evaluate("zone => localStorage.setItem('lookout.tz', zone)", zone)
    page.reload()
    rows = page.locator("#tasks-body tr")
    expect(rows).to_have_count(2)

    # `after` on when the task was first seen: copied from the second task's own page.
    page.goto(f"/tasks/{second['uuid']}")
    seen = _field(page, "timestamp")
    expect(seen).to_have_text(re.compile(r"\d\d:\d\d:\d\d\.\d{3}$"))
    seen_text = seen.inner_text()
    page.goto(base)
    expect(rows).to_have_count(2)
    page.fill("input[name=after]", seen_text)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"after="))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-uuid", second["uuid"])
    after = parse_qs(urlsplit(page.url).query)["after"][0]
    offset = "+05:45" if zone == "local" else "Z"
    assert after.endswith(offset), after  # an explicit offset, never a naive time
    # The field shows the time as read, with its date, in the zone shown.
    clock = seen_text[-12:].removesuffix(".000")  # a whole second shows no fraction
    expect(page.locator("input[name=after]")).to_have_value(
        re.compile(r"^\d{4}-\d\d-\d\d " + re.escape(clock) + "$"))
    shot(page, artifacts_dir / f"after-{zone}.png")

    # The received time shown in the table, typed as both ends: that task and no other.
    page.goto(base)
    expect(rows).to_have_count(2)
    received = _received_cell(page, first["uuid"]).inner_text()
    page.fill("input[name=received_after]", received)
    page.fill("input[name=received_before]", received)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"received_before="))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-uuid", first["uuid"])
    expect(page.locator("#error")).to_be_hidden()

    # Seconds only, as a person would type them, still include the shown millisecond.
    page.goto(base)
    expect(rows).to_have_count(2)
    page.fill("input[name=received_after]", received[:-4])
    page.fill("input[name=received_before]", received[:-4])
    page.click("button[type=submit]")
    expect(page.locator(f"#tasks-body tr[data-uuid='{first['uuid']}']")).to_be_visible()
    expect(page.locator("input[name=received_before]")).to_have_value(
        re.compile(re.escape(received[:-4]) + "$"))

    # Not a time: said so, and the URL stays as it was.
    url = page.url
    page.fill("input[name=started_after]", "yesterday-ish")
    page.click("button[type=submit]")
    expect(page.locator("#error")).to_contain_text("Started after")
    assert page.url == url
    page.watch.assert_clean()


def test_quick_ranges_fill_after_and_the_url(page, lookout, artifacts_dir):
    expect = _expect()
    marker = unique("quick")
    task = _finished(lookout, marker)
    page.goto(f"/tasks?queue={lookout.worker.queue}&q={marker}&before=2000-01-01T00:00:00Z")
    expect(page.locator("#tasks-body tr")).to_have_count(0)

    page.click("[data-testid='range-15m']")
    expect(page).to_have_url(re.compile(r"after="))
    query = parse_qs(urlsplit(page.url).query)
    assert "before" not in query  # a quick range runs up to now
    after = datetime.fromisoformat(query["after"][0])
    assert after.utcoffset() == timedelta(hours=5, minutes=45)  # the zone shown
    assert abs(after.timestamp() - (time.time() - 900)) < 60
    typed = page.locator("input[name=after]").input_value()
    assert datetime.strptime(typed, "%Y-%m-%d %H:%M:%S").replace(tzinfo=KATHMANDU) == after
    expect(page.locator("#tasks-body tr")).to_have_count(1)
    expect(page.locator("#tasks-body tr").first).to_have_attribute("data-uuid", task["uuid"])
    expect(page.locator("input[name=q]")).to_have_value(marker)  # other filters stay
    shot(page, artifacts_dir / "quick-15m.png")

    page.click("[data-testid='range-7d']")
    page.wait_for_function(
        "() => Date.now() / 1000 - 7 * 86400 - 60 < "
        "Date.parse(new URLSearchParams(location.search).get('after')) / 1000")
    expect(page.locator("#tasks-body tr")).to_have_count(1)
    # The URL opens the same view in another page.
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.locator("input[name=after]")).to_have_value(
        page.locator("input[name=after]").input_value())
    other.close()
    page.watch.assert_clean()
