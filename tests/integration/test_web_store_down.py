"""The web process starts, and keeps serving, while its store is down; it recovers alone.

An on-call restarting the web during a database outage got a crash loop: the web read
the store as it started (the schema upgrade, the live channel named after the store).
Now it starts, /healthz says "down", the API answers 503 in its error shape, a page says
the store is unavailable, and once the store is back everything works without a restart.

Real parts throughout: `lookout web` and gunicorn processes, a PostgreSQL database of
the test's own behind a TCP proxy that the test cuts (silence: connections accepted and
never answered, the hard case) and restores, the session's Redis database as the message
queue.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest

from helpers.browser import free_port
from helpers.pg import create_database, drop_database
from helpers.proxy import SilenceableProxy
from helpers.support import VENV_BIN, Process, wait_for
from lookout.collectors.push import NAMESPACE
from lookout.core.store import db as store_db
from lookout.dashboard.health.service import CHANNEL_UNKNOWN

STORE_DOWN = "store unavailable: the database did not answer"
PAGE_REFRESH = '<meta http-equiv="refresh" content="5">'
NOWHERE = "lookout_nowhere"  # the unreachable store's database name


def unreachable_store() -> str:
    """A PostgreSQL URL whose port refuses connections: nothing listens there."""
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/{NOWHERE}"


@pytest.fixture
def message_queue(redis_broker: str) -> str:
    """The session's own Redis database (collectors/watched.py keeps its keys there)."""
    return redis_broker


def fetch(url: str, token: str | None = None, accept: str | None = None,
          timeout: float = 20.0) -> tuple[int, dict, str]:
    """(status, headers, body) of a GET, error statuses included. Generous timeout: a
    store that never answers costs a request its connect timeout, twice for /healthz."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if accept:
        headers["Accept"] = accept
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def fetch_json(url: str, token: str | None = None) -> tuple[int, Any]:
    status, _, body = fetch(url, token)
    return status, json.loads(body)


# -- in process: what each kind of request gets ------------------------------------------
@pytest.fixture
def app_without_store(make_app, message_queue):
    """Built against a store that refuses connections, with auth on and a message queue
    (whose channel is named after the store): building it used to raise."""
    return make_app(unreachable_store(), auth=True, message_queue=message_queue)


def test_healthz_says_down_to_anyone_even_a_caller_with_a_token(app_without_store):
    client = app_without_store.test_client()
    for headers in ({}, {"Authorization": "Bearer not-checkable-now"}):
        response = client.get("/healthz", headers=headers)
        assert response.status_code == 503
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert set(body) == {"status", "healthy", "time"}  # the public verdict's shape
        assert body["status"] == "down" and body["healthy"] is False  # down: the store
    for path in ("/readyz", "/healthcheck"):  # Flower's probe asks what /readyz asks
        assert client.get(path, headers={"Authorization": "Bearer x"}).status_code == 503
    assert client.get("/healthcheck").get_data(as_text=True) == "store unavailable"


def test_healthz_names_the_store_in_its_report(make_app, message_queue):
    client = make_app(unreachable_store(), auth=False,
                      message_queue=message_queue).test_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    report = response.get_json()
    assert report["status"] == "down"
    assert report["database"] == {"ok": False, "error": "OperationalError"}
    assert report["problems"] == ["database unreachable"]
    # The queue probe waits for the live channel, which the store names.
    assert report["message_queue"] == {"ok": None, "subscribers": None,
                                       "error": CHANNEL_UNKNOWN}


@pytest.mark.parametrize("path", ["/api/v1/tasks", "/api/v1/stats", "/api/v1/workers"])
def test_api_answers_503_in_the_api_error_shape(app_without_store, path):
    response = app_without_store.test_client().get(
        path, headers={"Authorization": "Bearer not-checkable-now"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    error = response.get_json()["error"]
    assert error["status"] == 503 and error["message"].startswith(STORE_DOWN)
    assert NOWHERE not in error["message"]  # host and database: the log only


def test_a_page_is_the_store_unavailable_page_with_its_status(app_without_store):
    response = app_without_store.test_client().get(
        "/tasks", headers={"Accept": "text/html"}, follow_redirects=True)  # via /login
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert response.headers["Retry-After"] == "5"
    page = response.get_data(as_text=True)
    assert "<title>Store unavailable · Lookout</title>" in page  # the layout's error page
    assert f'id="error-message" class="error" role="alert">{STORE_DOWN}' in page
    assert PAGE_REFRESH in page and 'id="error-retry"' in page
    assert NOWHERE not in page and "Traceback" not in page


# -- real processes ------------------------------------------------------------------------
def lookout_web(port: int, database: str, queue: str, log, *extra: str) -> Process:
    return Process([str(VENV_BIN / "lookout"), "web", "--port", str(port),
                    "--database", database, "--message-queue", queue, *extra], log)


def gunicorn_web(port: int, database: str, queue: str, log) -> Process:
    return Process([str(VENV_BIN / "gunicorn"), "-w", "1", "--threads", "20",
                    "--graceful-timeout", "5", "-b", f"127.0.0.1:{port}",
                    "lookout.dashboard.wsgi:app_from_environment()"], log,
                   env={"LOOKOUT_DATABASE_URL": database, "LOOKOUT_AUTH": "1",
                        "LOOKOUT_MESSAGE_QUEUE": queue, "LOOKOUT_CELERY_APP": "",
                        "LOOKOUT_ALLOWED_HOSTS": "127.0.0.1"})


@pytest.mark.parametrize("server", ["lookout web", "gunicorn"])
def test_the_server_starts_without_its_store_and_says_so(server, tmp_path, message_queue):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if server == "gunicorn":
        process = gunicorn_web(port, unreachable_store(), message_queue, tmp_path / "web.log")
    else:  # auth on, as by default
        process = lookout_web(port, unreachable_store(), message_queue, tmp_path / "web.log")
    try:
        status, body = wait_for(lambda: fetch_json(base + "/healthz"), 60,
                                message=f"{server} answering without its store")
        assert (status, body["status"], body["healthy"]) == (503, "down", False)
        assert fetch_json(base + "/readyz")[0] == 503
        status, body = fetch_json(base + "/api/v1/tasks", token="not-checkable-now")
        assert status == 503 and body["error"]["message"].startswith(STORE_DOWN)
        status, _, page = fetch(base + "/login", accept="text/html")
        assert status == 503 and PAGE_REFRESH in page and STORE_DOWN in page
        assert "unavailable at start" in process.output()
        assert process.popen.poll() is None  # still serving: no crash, no restart
    finally:
        code = process.stop()
    assert code == 0, process.output()[-3000:]


# -- recovery: the store cut and restored under a running web process -------------------------
@pytest.fixture
def store_behind_proxy() -> Iterator[tuple[SilenceableProxy, str]]:
    """A migrated PostgreSQL database of the test's own, reached through a proxy; the
    URL bounds connection attempts to 2 s so that a cut costs each request that."""
    name, url = create_database("lookout_web_store")
    proxy = None
    try:
        store_db.upgrade(url)
        proxy = SilenceableProxy(("127.0.0.1", 5432))
        yield proxy, (f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{name}"
                      "?connect_timeout=2")
    finally:
        if proxy is not None:
            proxy.close()
        drop_database(name)


def test_a_web_started_during_an_outage_serves_once_the_store_is_back(store_behind_proxy,
                                                                       tmp_path, message_queue):
    """Started while the store is cut, then the store restored, cut and restored again:
    503s while cut, 200s after, the same process throughout. The live channel (named
    after the store) is looked up once the store answers, and the Socket.IO listener of
    a page connected during the outage subscribes then."""
    import socketio as socketio_client

    proxy, url = store_behind_proxy
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proxy.silence()
    web = lookout_web(port, url, message_queue, tmp_path / "web.log", "--no-auth")
    live = socketio_client.Client(reconnection=False)

    def store_down() -> bool:
        status, body = fetch_json(base + "/api/v1/tasks")
        return status == 503 and body["error"]["message"].startswith(STORE_DOWN)

    def store_back() -> bool:
        return fetch_json(base + "/api/v1/tasks")[0] == 200

    try:
        wait_for(lambda: fetch(base + "/readyz")[0] == 503, 60,
                 message="web up while the store is cut")
        assert store_down()
        status, report = fetch_json(base + "/healthz")
        assert status == 503 and report["database"]["ok"] is False
        assert report["message_queue"]["error"] == CHANNEL_UNKNOWN
        live.connect(base, namespaces=[NAMESPACE], transports=["websocket"], wait_timeout=10)

        proxy.resume()
        wait_for(store_back, 30, 0.2, "200 once the store is back")
        assert fetch_json(base + "/readyz")[0] == 200

        def subscribed():  # the channel known at last, the live page's listener on it
            report = fetch_json(base + "/healthz")[1]
            queue = report["message_queue"]
            return report["database"] == {"ok": True} and queue["ok"] and \
                queue["subscribers"] >= 1 and report
        report = wait_for(subscribed, 30, 0.2, "the listener subscribed to the channel")
        assert "database unreachable" not in report["problems"]
        wait_for(lambda: "schema up to date" in web.output(), 30, 0.2,
                 "the upgrade deferred at the start, run once the store answered")

        proxy.silence()  # cut again: pooled connections end, new ones hang
        wait_for(store_down, 30, 0.2, "503 while cut again")
        proxy.resume()
        wait_for(store_back, 30, 0.2, "200 again without a restart")
        assert web.popen.poll() is None
    finally:
        live.disconnect()
        code = web.stop()
    assert code == 0, web.output()[-3000:]
    assert "unavailable at start" in web.output()
