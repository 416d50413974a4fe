"""Bidi controls (Trojan Source, CVE-2021-42574) in a task's name and arguments, sent by a
real client to a real worker, show in chromium as visible marks and never act."""
from __future__ import annotations

import pytest

from helpers.workers import unique
from lookout.dashboard.web.layout import reveal_bidi

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "\u202eyppels.ppaers" displays as "sreapp.sleppy"
MARK = "\u27e8U+202E\u27e9"
CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_tasks_and_failures_show_bidi_controls_in_name_and_args_as_marks(page, lookout):
    from playwright.sync_api import expect

    name = f"{RLO}yppels.ppaers"
    marker = unique("bidi")
    task_id = unique("bidi-task")
    lookout.client.send_task(name, args=[f"{RLO}{marker}"], task_id=task_id,
                             queue=lookout.worker.queue)
    stored = lookout.wait_state(task_id, "FAILURE")  # the worker does not know the name
    assert stored["name"] == name and RLO in stored["args"]  # the API keeps the data as is

    page.goto(f"/tasks?q={marker}")
    row = page.locator(f'#tasks-body tr[data-uuid="{task_id}"]')
    expect(row).to_contain_text(f"{MARK}yppels.ppaers")
    expect(row).to_contain_text(f"{MARK}{marker}")
    text = row.inner_text()
    assert RLO not in text and "sreapp" not in text
    args_title = row.locator(".clip").get_attribute("title")  # the args cell's tooltip
    assert RLO not in args_title and f"{MARK}{marker}" in args_title

    page.goto("/failures")
    group = page.locator('[data-testid="group-row"]', has_text="yppels.ppaers")
    expect(group).to_contain_text(f"{MARK}yppels.ppaers")
    assert RLO not in group.inner_text()
    page.watch.assert_clean()

    # The page script's helper and the templates' give the same text.
    samples = [name, f"a{CONTROLS}b", "plain \\u202e", "", "שלום"]
    assert page.evaluate("samples => samples.map(Lookout.revealBidi)", samples) == [
        reveal_bidi(s) for s in samples]
