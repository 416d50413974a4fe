"""Bidi controls (Trojan Source, CVE-2021-42574) in a task's name and arguments, sent by a
real client to a real worker, show in chromium as visible marks and never act: in the page,
its tooltips, its title and its charts."""
from __future__ import annotations

import re
import time

import pytest

from helpers.factories import add_rollup, minute
from helpers.workers import unique
from lookout.core.store.db import make_engine
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


def test_page_titles_and_chart_text_show_bidi_controls_as_marks(page, lookout, artifacts_dir):
    """document.title (set by the page script) and Chart.js text (legend, tooltip: drawn
    on a canvas, past el() and setText()) reveal them too."""
    from playwright.sync_api import expect

    marker = unique("titled")
    name = f"{RLO}{marker}.ppaers"
    task_id = unique("bidi-title")
    lookout.client.send_task(name, task_id=task_id, queue=lookout.worker.queue)
    lookout.wait_state(task_id, "FAILURE")

    page.goto(f"/tasks/{task_id}")
    expect(page).to_have_title(f"{MARK}{marker}.ppaers · Lookout")
    page.goto(f"/workflows/{task_id}")
    expect(page).to_have_title(f"Workflow {MARK}{marker}.ppaers · Lookout")

    # The Retries chart: one series per task name, so the name is in legend and tooltip.
    engine = make_engine(lookout.database_url)
    try:
        # Ten minutes back: the task above already has a row in this minute's bucket.
        add_rollup(engine, name, minute(time.time()) - 600, retried=10_000, failed=1)
    finally:
        engine.dispose()
    page.goto("/retries")
    expect(page.locator("#rates-body")).to_contain_text(f"{MARK}{marker}.ppaers")
    texts = page.evaluate("""name => {
      const chart = Chart.getChart("retry-chart");
      const index = chart.data.datasets.findIndex(d => d.label.includes(name));
      chart.tooltip.setActiveElements([{datasetIndex: index, index: 0}], {x: 0, y: 0});
      chart.update();
      return {legend: chart.legend.legendItems.map(item => item.text),
              tooltip: chart.tooltip.body.flatMap(b => b.lines), when: chart.tooltip.title};
    }""", marker)
    assert len(texts["when"]) == 1 and re.fullmatch(r"\d\d:\d\d", texts["when"][0]), texts
    assert f"{MARK}{marker}.ppaers" in texts["legend"], texts
    assert any(line.startswith(f"{MARK}{marker}.ppaers: ") for line in texts["tooltip"]), texts
    assert not any(RLO in text for text in texts["legend"] + texts["tooltip"]), texts
    page.screenshot(path=str(artifacts_dir / "retries-chart.png"), full_page=True)
    page.watch.assert_clean()
