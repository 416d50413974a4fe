"""The pages when a browser library does not load (offline, blocked CDN, strict proxy).

Playwright aborts the request for the bundled build, as a failed fetch would. Without the
Socket.IO client the indicator says so and the live pages poll the API; without Chart.js
each chart gives way to a notice. The failed request itself is only a console message:
no page may throw.
"""
from __future__ import annotations

import re

import pytest

from helpers.workers import unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SOCKETIO = "**/static/vendor/socket.io.min.js"
CHARTJS = "**/static/vendor/chart.umd.js"
CHART_PAGES = ("/", "/retries", "/queues")


def _expect():
    from playwright.sync_api import expect

    return expect


def block(page, *patterns: str) -> None:
    """Make every request for these scripts fail, as a blocked CDN would."""
    for pattern in patterns:
        page.route(pattern, lambda route: route.abort())


def test_tasks_page_polls_when_the_socketio_client_does_not_load(page, lookout, artifacts_dir):
    expect = _expect()
    block(page, SOCKETIO)
    marker = unique("offline")
    page.goto(f"/tasks?queue={lookout.worker.queue}&q={marker}")
    indicator = page.locator("#connection")
    expect(indicator).to_have_attribute("data-state", "polling")
    expect(indicator).to_have_text(
        "live updates unavailable, refreshing every 5 s: the Socket.IO client did not load "
        "from /static/vendor/socket.io.min.js")
    expect(page.locator("body")).to_have_attribute("data-live", "polling")
    expect(page.locator("body")).to_have_attribute("data-loaded", re.compile(r"^\d+$"))
    expect(page.locator("#tasks-body tr")).to_have_count(0)

    # Nothing is pushed to this page: the new task can only arrive by a polled reload,
    # within a few polls (expect's own deadline, 5 s, is one poll).
    task_id = lookout.send("sample.echo", marker=marker)
    row = page.locator(f"#tasks-body tr[data-uuid='{task_id}']")
    expect(row).to_have_attribute("data-state", "SUCCESS", timeout=20_000)
    expect(page.locator("#live-note")).to_have_text("new tasks appear at each refresh")
    page.screenshot(path=str(artifacts_dir / "tasks-polling.png"), full_page=True)
    page.set_viewport_size({"width": 900, "height": 700})
    page.screenshot(path=str(artifacts_dir / "tasks-polling-narrow.png"))
    page.watch.assert_clean()


def test_chart_pages_show_a_notice_when_chartjs_does_not_load(page, lookout, artifacts_dir):
    expect = _expect()
    block(page, CHARTJS)
    for path in CHART_PAGES:
        page.goto(path)
        notice = page.locator("[data-testid=chart-notice]")
        expect(notice).to_have_count(1)
        expect(notice).to_contain_text(
            "Charts unavailable: Chart.js did not load from /static/vendor/chart.umd.js")
        expect(page.locator("canvas")).to_be_hidden()
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        name = "overview" if path == "/" else path.strip("/")
        page.screenshot(path=str(artifacts_dir / f"{name}-no-chartjs.png"), full_page=True)
    # The page's other parts carry on: Queues still lists the broker's queues.
    expect(page.locator("#queues")).to_have_attribute("data-loaded", "queues")
    page.goto("/")
    expect(page.locator("#count-succeeded")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("#workers-body")).to_contain_text(lookout.worker.hostname)
    page.watch.assert_clean()


def test_every_page_works_with_both_libraries_blocked(page, lookout, artifacts_dir):
    expect = _expect()
    block(page, SOCKETIO, CHARTJS)
    task_id = lookout.send("sample.add", 2, 3)
    lookout.wait_state(task_id, "SUCCESS")
    host = lookout.worker.hostname
    # (path, what shows the page loaded its data, state of the indicator)
    pages = (("/", "#workers-body tr", "polling"),
             (f"/tasks/{task_id}", "#task[data-state='SUCCESS']", "polling"),
             ("/workers", f"tr[data-hostname='{host}']", "polling"),
             (f"/workers/{host}", "#worker[data-inspected]", "polling"),
             ("/retries", "#retries[data-loaded]", "polling"),
             ("/queues", "#queues[data-loaded]", "unavailable"),
             ("/schedules", "#schedules[data-loaded]", "polling"))
    for path, loaded, state in pages:
        page.goto(path)
        expect(page.locator(loaded).first).to_be_attached()
        indicator = page.locator("#connection")
        expect(indicator).to_have_attribute("data-state", state)
        expect(indicator).to_contain_text("the Socket.IO client did not load")
    page.goto("/")
    expect(page.locator("[data-testid=chart-notice]")).to_be_visible()
    expect(page.locator("#count-succeeded")).to_have_text(re.compile(r"^\d+$"))
    page.screenshot(path=str(artifacts_dir / "overview-both-blocked.png"), full_page=True)
    page.watch.assert_clean()


def test_no_fallback_notice_when_both_libraries_load(page, lookout, artifacts_dir):
    expect = _expect()
    for path in CHART_PAGES:
        page.goto(path)
        indicator = page.locator("#connection")
        expect(indicator).to_have_attribute("data-state", "live")
        expect(indicator).to_have_text("live")
        expect(page.locator("canvas")).to_be_visible()
        expect(page.locator("[data-testid=chart-notice]")).to_have_count(0)
    page.goto("/")
    expect(page.locator("body")).to_have_attribute("data-live", "subscribed")
    page.wait_for_function("() => Chart.getChart(document.getElementById('rate-chart'))")
    page.screenshot(path=str(artifacts_dir / "overview-all-loaded.png"), full_page=True)
    page.watch.assert_clean()
