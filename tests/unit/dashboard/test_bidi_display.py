"""Bidi controls in names and ids are shown as visible marks on server-rendered pages, and
kept as they are wherever the value is data (data-* attributes, the API)."""
from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest

from lookout.dashboard.web.layout import reveal_bidi

CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
RLO = "\u202e"


def test_every_bidi_control_becomes_a_visible_mark():
    assert reveal_bidi(f"{RLO}yppels.ppaers") == "\u27e8U+202E\u27e9yppels.ppaers"
    shown = reveal_bidi(f"a{CONTROLS}b")
    assert not set(CONTROLS) & set(shown)
    assert re.findall(r"\u27e8U\+([0-9A-F]{4})\u27e9", shown) == [
        f"{ord(c):04X}" for c in CONTROLS]
    # Everything else, backslash escapes and other right-to-left text included, is kept.
    for text in ("proj.tasks.add", r"('\u202e',)", "שלום", "", "\u200d\u00ad"):
        assert reveal_bidi(text) == text
    assert reveal_bidi(shown) == shown  # a page script revealing it again changes nothing


@pytest.fixture
def client(make_app, sqlite_url):
    return make_app(sqlite_url, secret_key="test").test_client()


def shown_text(page: str) -> str:
    """The page's text outside tags (attribute values are not shown)."""
    return html.unescape(re.sub(r"<[^>]*>", "", page))


@pytest.mark.parametrize("path, data", [
    ("/tasks/{}", 'data-task-id="{}"'),
    ("/workflows/{}", 'data-root-id="{}"'),
    ("/workers/{}", 'data-hostname="{}"'),
    ("/schedules/app/{}", 'data-name="{}"'),
])
def test_pages_show_bidi_controls_as_marks_and_keep_them_in_data(client, path, data):
    value = f"{RLO}yppels.ppaers"
    page = client.get(path.format(quote(value))).get_data(as_text=True)
    assert data.format(value) in page  # what the page script reads: unchanged
    text = shown_text(page)
    assert RLO not in text
    assert "\u27e8U+202E\u27e9yppels.ppaers" in text
    # The control forms' confirm texts are shown in a dialog (auth off: forms present).
    for confirm in re.findall(r'data-confirm="([^"]*)"', page):
        assert RLO not in html.unescape(confirm)
