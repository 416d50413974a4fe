"""Layout in a real chromium: the worker page's tabs, the nav each role sees, narrow
screens and the dark theme.

One protected `lookout run` and worker serve the module. Its users go straight into the
store before the server starts (the CLI's `users add` is covered by the controls tests,
and each run of it costs a Python start-up). Checks wait on what the page shows.
"""
from __future__ import annotations

import re
from typing import Iterator

import pytest

from helpers.browser import Lookout, running_lookout
from helpers.workers import unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "correct horse battery"
USERS = {"ada": "admin", "otto": "operator", "vic": "viewer"}
RESTRICTED = ("Controls", "Audit", "Users")
# A task id that is markup: the worker page shows it (Scheduled and Recent tables) as text.
HOSTILE_ID = '<img src=x onerror="window.__pwned=1">' + unique("id")
TABS = ("pool", "queues", "tasks", "limits", "config", "system")


def _expect():
    from playwright.sync_api import expect

    return expect


@pytest.fixture(scope="module")
def lookout(redis_broker, tmp_path_factory) -> Iterator[Lookout]:
    """running_lookout with login required, three users, and a task held for an hour
    under a hostile id (so the worker's Scheduled list is never empty)."""
    from lookout.core.store.db import make_engine, upgrade
    from lookout.dashboard.auth.accounts import AccountStore

    tmp = tmp_path_factory.mktemp("lookout-layout")
    database_url = f"sqlite:///{tmp / 'lookout.db'}"  # where running_lookout puts its store
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        accounts = AccountStore(engine)
        for name, role in USERS.items():
            accounts.add_user(name, PASSWORD, role)
    finally:
        engine.dispose()
    with running_lookout(redis_broker, tmp, args=()) as running:
        running.client.send_task("sample.echo", args=("later",), task_id=HOSTILE_ID,
                                 queue=running.worker.queue, countdown=3600)
        yield running


def log_in(page, username: str) -> None:
    """Log the page's context in without rendering a page (the form is the controls
    tests' business): the session cookie lands in the context's jar."""
    form = page.request.get("/login").text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    answer = page.request.post("/login", form={"username": username, "password": PASSWORD,
                                               "csrf_token": token, "next": "/"},
                               max_redirects=0)
    assert answer.status == 302, (username, answer.status)


def shot(page, path) -> None:
    """Screenshot bytes written here (Playwright's own file writing leaks a thread)."""
    path.write_bytes(page.screenshot(full_page=True))


def no_sideways_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_worker_tabs_switch_by_click_and_keyboard_and_the_hash_survives_a_reload(
        page, lookout, artifacts_dir):
    expect = _expect()
    log_in(page, "otto")
    page.goto(f"/workers/{lookout.worker.hostname}")
    expect(page.locator("#worker")).to_have_attribute("data-inspected", "answered")

    def shows(name: str) -> None:
        expect(page.locator(f"#tab-{name}")).to_have_attribute("aria-selected", "true")
        expect(page.locator(f"#panel-{name}")).to_be_visible()
        for other in TABS:
            if other != name:
                expect(page.locator(f"#tab-{other}")).to_have_attribute("aria-selected", "false")
                expect(page.locator(f"#panel-{other}")).to_be_hidden()

    # Pool first, with its controls; the page is no JSON dump any more.
    shows("pool")
    expect(page.locator('[data-testid="concurrency"]')).to_have_text("2")
    expect(page.locator("#pool-grow-form")).to_be_visible()
    expect(page.locator("pre")).to_have_count(0)
    expect(page.locator('[role="tab"][tabindex="0"]')).to_have_count(1)

    page.click("#tab-queues")
    shows("queues")
    expect(page).to_have_url(re.compile(r"#queues$"))
    expect(page.locator("#queues-body")).to_contain_text(lookout.worker.queue)
    expect(page.locator("#consumer-add-form")).to_be_visible()

    # Arrow keys move the selection (and the focus) along the tabs.
    page.keyboard.press("ArrowRight")
    shows("tasks")
    expect(page.locator("#tab-tasks")).to_be_focused()
    expect(page).to_have_url(re.compile(r"#tasks$"))
    expect(page.locator("#registered-body")).to_contain_text("sample.add")
    scheduled = page.locator("#scheduled-body")
    if HOSTILE_ID not in scheduled.inner_text():  # the first answer may predate the task
        page.click("#inspect-refresh")
    expect(scheduled).to_contain_text(HOSTILE_ID)
    assert page.locator("#panel-tasks img").count() == 0
    assert page.evaluate("() => window.__pwned") is None

    page.reload()
    shows("tasks")
    expect(page.locator("#scheduled-body")).to_contain_text("sample.echo")
    shot(page, artifacts_dir / "worker-tasks.png")

    page.click("#tab-config")
    shows("config")
    config = page.locator("#config-body")
    expect(config).to_contain_text("worker_send_task_events")  # -E: not Celery's default
    page.fill("#config-filter", "broker_")
    expect(config.locator("tr:visible")).not_to_have_count(0)
    for text in config.locator("tr:visible").all_inner_texts():
        assert "broker_" in text.lower(), text
    page.locator("#tab-config").focus()
    page.keyboard.press("End")
    shows("system")
    expect(page.locator("#software")).to_contain_text("celery")
    expect(page.locator("#rusage-body")).to_contain_text("User CPU time")
    page.keyboard.press("Home")
    shows("pool")
    page.watch.assert_clean()


def test_main_nav_lists_each_role_the_pages_it_may_open(page, lookout):
    expect = _expect()
    nav = page.locator('nav[aria-label="Main"]')
    for username, shown in (("vic", ()), ("otto", ("Controls", "Audit")), ("ada", RESTRICTED)):
        # Off the previous user's page first: its socket and timers kept making requests
        # whose answers replaced the session cookie between the login form and its post
        # (a CSRF mismatch, 403, seen under load).
        page.goto("about:blank")
        page.context.clear_cookies()
        log_in(page, username)
        page.goto("/workers")
        expect(page.locator("#account-name")).to_have_text(f"{username} ({USERS[username]})")
        for label in RESTRICTED:
            expect(nav.get_by_role("link", name=label, exact=True)).to_have_count(
                1 if label in shown else 0)
        # The nav and the server agree: every page a role is not shown refuses it.
        for label, path in zip(RESTRICTED, ("/controls", "/audit", "/admin")):
            status = page.request.get(path).status
            assert (status == 200) == (label in shown), (username, path, status)
        expect(page.locator("#account a")).to_have_count(0)  # no second, thinner nav
    # The ids the controls tests click are on the nav links.
    page.click("#controls-link")
    expect(nav.locator("a.active")).to_have_text("Controls")
    page.click("#admin-link")
    expect(nav.locator("a.active")).to_have_text("Users")
    page.watch.assert_clean()


def test_no_sideways_scroll_at_800px(page, lookout, artifacts_dir):
    expect = _expect()
    log_in(page, "ada")  # the longest nav
    for i in range(3):
        lookout.send("sample.echo", i, note="x" * 120)
    page.set_viewport_size({"width": 800, "height": 900})
    page.goto("/tasks")
    expect(page.locator("#tasks-body tr").first).to_be_visible()
    assert no_sideways_scroll(page)
    # Every column is still there: the table scrolls inside its own box.
    box = page.locator("#tasks-table").locator("xpath=..")
    assert box.evaluate("b => b.scrollWidth > b.clientWidth")
    box.evaluate("b => { b.scrollLeft = b.scrollWidth; }")
    expect(page.locator("#tasks-table th").last).to_be_in_viewport()
    shot(page, artifacts_dir / "tasks-800.png")
    page.goto(f"/workers/{lookout.worker.hostname}#tasks")
    expect(page.locator("#worker")).to_have_attribute("data-inspected", "answered")
    assert no_sideways_scroll(page)  # the fixture's final.png shows this page
    page.watch.assert_clean()


def test_the_nav_keeps_one_line_beside_a_long_connection_state(page, lookout, artifacts_dir):
    """At 1,400 px, signed in as admin (the longest nav), a long connection state once
    pushed "Users" onto a second nav line; now the state and account move down instead."""
    log_in(page, "ada")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto("/workers")
    page.locator("#connection").evaluate(
        "n => { n.textContent = 'collector down: disconnected from broker'; }")
    tops = page.locator('nav[aria-label="Main"] a').evaluate_all(
        "links => links.map(a => Math.round(a.getBoundingClientRect().top))")
    assert len(tops) == 12 and len(set(tops)) == 1, tops
    assert no_sideways_scroll(page)
    shot(page, artifacts_dir / "nav-1400.png")
    page.watch.assert_clean()


BACKGROUND = "() => getComputedStyle(document.body).backgroundColor"
CHART = "() => { const c = Chart.getChart(document.getElementById('rate-chart'));" \
        " return [Chart.defaults.color, c.data.datasets[0].borderColor]; }"
OK_COLOUR = "() => getComputedStyle(document.documentElement).getPropertyValue('--ok').trim()"


def test_dark_theme_follows_the_system(browser, lookout, artifacts_dir):
    expect = _expect()
    context = browser.new_context(base_url=lookout.url, color_scheme="dark",
                                  viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        log_in(page, "vic")
        page.goto("/")
        page.wait_for_function("() => Chart.getChart(document.getElementById('rate-chart'))")
        expect(page.locator("#workers-body")).to_contain_text(lookout.worker.hostname)
        dark_background, dark_chart = page.evaluate(BACKGROUND), page.evaluate(CHART)
        # The chart's axis text and throughput line come from the dark theme's variables.
        assert dark_chart[1] == page.evaluate(OK_COLOUR)
        shot(page, artifacts_dir / "overview-dark.png")

        # The system turns light while the page is open: page and chart follow.
        page.emulate_media(color_scheme="light")
        assert page.evaluate(BACKGROUND) != dark_background
        light_ok = page.evaluate(OK_COLOUR)
        page.wait_for_function("ok => Chart.getChart(document.getElementById('rate-chart'))"
                               ".data.datasets[0].borderColor === ok", arg=light_ok)
        light_chart = page.evaluate(CHART)
        assert light_chart[0] != dark_chart[0] and light_chart[1] != dark_chart[1]
        assert not errors, errors
    finally:
        context.close()
