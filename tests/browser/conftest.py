"""Browser fixtures: a real Lookout and worker per module, headless chromium, a fresh page.

One `lookout run` subprocess (collector + web, SQLite, no login) and one `celery worker -E`
serve a whole module: starting them is most of a browser test's cost.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Lookout,
    PageWatch,
    running_lookout,
    screenshot_writer,
)


@pytest.fixture(scope="module")
def lookout(redis_broker, tmp_path_factory) -> Iterator[Lookout]:
    """A module's Lookout (no login) and worker: see running_lookout."""
    with running_lookout(redis_broker, tmp_path_factory.mktemp("lookout")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system chromium, shared by a module's tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser, lookout, artifacts_dir: Path) -> Iterator[Any]:
    """A fresh page with base_url set to the Lookout under test; `page.watch` records
    dialogs (dismissed), script errors and CSP violations (`page.watch.assert_clean()`);
    a final screenshot goes to artifacts_dir."""
    context = browser.new_context(base_url=lookout.url, viewport={"width": 1400, "height": 1000})
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
            page.screenshot(path=str(artifacts_dir / "final.png"), full_page=True)
        finally:
            context.close()


