"""A browser opening a page it may not see gets a page saying why, not the API's JSON;
the API, scripts and scrapers keep the JSON error."""
from __future__ import annotations

import re

import pytest

from helpers.control import app_with_users, login

# What Chromium and Firefox send when the address bar opens a page.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,"
                     "image/avif,image/webp,*/*;q=0.8"}


@pytest.fixture
def app(sqlite_url):
    app = app_with_users(sqlite_url, "redis://127.0.0.1:1/0")  # no broker needed
    yield app
    app.extensions["lookout.engine"].dispose()


@pytest.fixture
def viewer(app):
    client = app.test_client()
    login(client, "vic")
    return client


@pytest.mark.parametrize("path, role", [("/controls", "operator"), ("/audit", "operator"),
                                        ("/admin", "admin")])
def test_a_viewer_opening_an_operator_page_gets_a_page_saying_which_role(viewer, path, role):
    response = viewer.get(path, headers=BROWSER)
    assert response.status_code == 403 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<h1>Not allowed</h1>" in html and '{"error"' not in html
    assert f"{role} role required (you are viewer)" in html
    assert f"needs the <strong>{role}</strong> role" in html
    assert re.search(r'<a id="back-to-overview" href="/">Back to the Overview</a>', html)
    assert 'id="account-name"' in html  # the layout, with who is logged in
    # The API, and scripts (curl's */*, no Accept, JSON asked for), keep the JSON error.
    expected = {"error": {"status": 403, "message": f"{role} role required (you are viewer)"}}
    api = "/api/v1/users" if role == "admin" else "/api/v1/audit"
    for where, headers in ((api, BROWSER), (path, {"Accept": "*/*"}), (path, {}),
                           (path, {"Accept": "application/json"})):
        response = viewer.get(where, headers=headers)
        assert (response.status_code, response.get_json()) == (403, expected), (where, headers)


def test_the_refusal_page_escapes_what_the_request_sent(make_app, sqlite_url):
    """Page refusals quote the request (a parameter's name here): text, never markup."""
    client = make_app(sqlite_url).test_client()
    response = client.get("/tasks?%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E=%00",
                          headers=BROWSER)
    assert response.status_code == 400 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;: contains a NUL character" in html
