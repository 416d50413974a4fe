"""Page skeletons: strict-CSP friendly HTML, escaped URL values, vendored libraries with SRI."""
from __future__ import annotations

import base64
import hashlib
import re

import pytest

from lookout.dashboard import PACKAGE_ROOT
from lookout.dashboard.web.layout import INTEGRITY

CDN_CHARTJS = "https://cdn.jsdelivr.net/npm/chart.js@4.4.1/dist/chart.umd.js"
CDN_SOCKETIO = "https://cdn.jsdelivr.net/npm/socket.io-client@4.7.5/dist/socket.io.min.js"
PAGES = ("/", "/tasks", "/tasks/some-task-id", "/schedules", "/schedules/app/x", "/trouble",
         "/failures", "/alerts", "/controls", "/retries")


@pytest.fixture
def cdn_client(make_app, sqlite_url):
    return make_app(sqlite_url, secret_key="test", chartjs_url=CDN_CHARTJS,
                    socketio_url=CDN_SOCKETIO).test_client()


@pytest.fixture
def bundled_client(make_app, sqlite_url):
    """The default: no URL configured, the builds bundled in the package."""
    return make_app(sqlite_url, secret_key="test").test_client()


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


def test_bundled_builds_are_the_default_and_match_the_pinned_hashes(bundled_client):
    html = bundled_client.get("/").get_data(as_text=True)
    assert "cdn.jsdelivr.net" not in html and "https://" not in html
    for name, cdn_url in (("chart.umd.js", CDN_CHARTJS), ("socket.io.min.js", CDN_SOCKETIO)):
        local = f"/static/vendor/{name}"
        assert f'src="{local}" defer integrity="{INTEGRITY[cdn_url]}"' in html
        response = bundled_client.get(local)
        assert response.status_code == 200
        # The bundled files are the CDN's files: the pinned hash must match byte for byte.
        digest = base64.b64encode(hashlib.sha384(response.get_data()).digest()).decode()
        assert INTEGRITY[cdn_url] == f"sha384-{digest}"
        response.close()
    assert (PACKAGE_ROOT / "static" / "vendor" / "chart.js.LICENSE.md").exists()


def test_a_configured_local_url_is_used_as_given(make_app, sqlite_url):
    client = make_app(sqlite_url, chartjs_url="/assets/chart.js",
                      socketio_url="/assets/sio.js").test_client()
    html = client.get("/").get_data(as_text=True)
    assert '<script src="/assets/chart.js" defer>' in html
    assert '<script src="/assets/sio.js" defer>' in html
    assert "integrity=" not in html


def test_task_id_from_the_url_is_escaped(cdn_client):
    html = cdn_client.get("/tasks/%3Cimg%20src=x%20onerror=alert(1)%3E").get_data(as_text=True)
    assert "<img" not in html
    assert 'data-task-id="&lt;img src=x onerror=alert(1)&gt;"' in html


def test_only_the_overview_loads_chartjs(cdn_client):
    assert CDN_CHARTJS in cdn_client.get("/").get_data(as_text=True)
    assert CDN_CHARTJS not in cdn_client.get("/tasks").get_data(as_text=True)
