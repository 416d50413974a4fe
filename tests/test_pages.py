"""Page skeletons: strict-CSP friendly HTML, escaped URL values, vendored libraries with SRI."""
from __future__ import annotations

import base64
import hashlib
import re

import pytest

from dashboard import ROOT, create_app
from dashboard.pages import INTEGRITY

CDN_CHARTJS = "https://cdn.jsdelivr.net/npm/chart.js@4.4.1/dist/chart.umd.js"
CDN_SOCKETIO = "https://cdn.jsdelivr.net/npm/socket.io-client@4.7.5/dist/socket.io.min.js"
PAGES = ("/", "/tasks", "/tasks/some-task-id")


def make_client(sqlite_url, **overrides):
    app = create_app(database_url=sqlite_url, auth=False, secret_key="test", **overrides)
    return app, app.test_client()


@pytest.fixture
def cdn_client(sqlite_url):
    app, client = make_client(sqlite_url, chartjs_url=CDN_CHARTJS, socketio_url=CDN_SOCKETIO)
    yield client
    app.extensions["lookout.engine"].dispose()


@pytest.fixture
def local_client(sqlite_url):
    app, client = make_client(sqlite_url, chartjs_url="/vendor/chart.umd.js",
                              socketio_url="/vendor/socket.io.min.js")
    yield client
    app.extensions["lookout.engine"].dispose()


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_no_inline_script_style_or_handler(cdn_client, path):
    html = cdn_client.get(path).get_data(as_text=True)
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None
    assert re.search(r"<style\b|\sstyle=", html) is None
    assert re.search(r"\son[a-z]+\s*=", html) is None
    assert 'id="connection"' in html
    for label in ("Overview", "Tasks", "Workers", "Queues", "Retries", "Schedules"):
        assert f">{label}</a>" in html


def test_cdn_scripts_carry_their_integrity_hash(cdn_client):
    html = cdn_client.get("/").get_data(as_text=True)
    for url in (CDN_CHARTJS, CDN_SOCKETIO):
        assert f'src="{url}" defer integrity="{INTEGRITY[url]}" crossorigin="anonymous"' in html
    assert cdn_client.get("/vendor/chart.umd.js").status_code == 404  # not configured


def test_local_copies_are_served_without_integrity(local_client):
    html = local_client.get("/").get_data(as_text=True)
    assert '<script src="/vendor/chart.umd.js" defer>' in html
    assert '<script src="/vendor/socket.io.min.js" defer>' in html
    assert "integrity=" not in html
    if not (ROOT / "vendor" / "chart.umd.js").exists():
        pytest.skip("run `make vendor/.installed`")
    for name, url in (("chart.umd.js", CDN_CHARTJS), ("socket.io.min.js", CDN_SOCKETIO)):
        response = local_client.get(f"/vendor/{name}")
        assert response.status_code == 200
        # The npm files are the CDN's files: the pinned hash must match them byte for byte.
        digest = base64.b64encode(hashlib.sha384(response.get_data()).digest()).decode()
        assert INTEGRITY[url] == f"sha384-{digest}"
        response.close()
    assert local_client.get("/vendor/node_modules").status_code == 404
    assert local_client.get("/vendor/..%2Fsetup.cfg").status_code == 404


def test_task_id_from_the_url_is_escaped(cdn_client):
    html = cdn_client.get("/tasks/%3Cimg%20src=x%20onerror=alert(1)%3E").get_data(as_text=True)
    assert "<img" not in html
    assert 'data-task-id="&lt;img src=x onerror=alert(1)&gt;"' in html


def test_only_the_overview_loads_chartjs(cdn_client):
    assert CDN_CHARTJS in cdn_client.get("/").get_data(as_text=True)
    assert CDN_CHARTJS not in cdn_client.get("/tasks").get_data(as_text=True)
