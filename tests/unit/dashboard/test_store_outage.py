"""A store that refuses connections is a 503 that says so, never "error in the application".

Real parts: a PostgreSQL database of the test's own, switched off with ALLOW_CONNECTIONS.
"""
from __future__ import annotations

import pytest

from helpers.apps import build_app
from helpers.pg import admin_run, create_database, drop_database
from lookout.core.store import db as store_db


@pytest.fixture
def app_on_a_store_gone_away():
    name, url = create_database("lookout_gone")
    store_db.upgrade(url)
    app = build_app(url)
    try:
        assert app.test_client().get("/api/v1/tasks").status_code == 200
        admin_run(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin_run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE datname = :name", name=name)
        yield app
    finally:
        app.extensions["lookout.engine"].dispose()
        drop_database(name)


@pytest.mark.parametrize("path", ["/api/v1/tasks", "/api/v1/stats", "/api/v1/trouble",
                                  "/api/workers", "/api/tasks"])
def test_api_reads_answer_503_json_naming_the_store(app_on_a_store_gone_away, path):
    response = app_on_a_store_gone_away.test_client().get(path)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    message = response.get_json()["error"]["message"]
    assert message.startswith("store unavailable: the database did not answer")
    assert "lookout_gone" not in message and "127.0.0.1" not in message  # log only


def test_metrics_scrape_is_a_plain_503(app_on_a_store_gone_away):
    response = app_on_a_store_gone_away.test_client().get("/metrics")
    assert response.status_code == 503
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True).startswith("store unavailable: ")


def test_the_login_page_retries_by_itself_and_names_no_host(app_on_a_store_gone_away,
                                                             caplog):
    client = app_on_a_store_gone_away.test_client()
    response = client.get("/login")  # reads the store (is there any user yet?)
    assert response.status_code == 503 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="5">' in page
    assert "lookout_gone" not in page and "127.0.0.1" not in page
    assert "not currently accepting connections" in caplog.text  # what the log keeps


def test_a_post_whose_audit_record_cannot_be_written_keeps_its_answer(
        app_on_a_store_gone_away, caplog):
    """The audit hook runs after the view: with the store away it failed the request
    with a 500 ("error while handling an error"). The record goes to the log instead."""
    response = app_on_a_store_gone_away.test_client().post(
        "/login", data={"username": "ada", "password": "x"})
    assert response.status_code == 403  # no CSRF token: refused, as with the store up
    assert "audit record not written, store unavailable" in caplog.text
    assert "POST /login" in caplog.text


def test_readyz_follows_the_store_alone(make_app, sqlite_url, app_on_a_store_gone_away):
    """Load balancers route on /readyz: 200 while the web can serve, whatever the broker
    and collectors do (/healthz is 503 then), 503 without its store. Public, no detail."""
    up = make_app(sqlite_url, auth=True).test_client()
    assert up.get("/healthz").status_code == 503  # no collector anywhere
    ready = up.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["ready"] is True
    assert set(ready.get_json()) == {"ready", "time"}
    gone = app_on_a_store_gone_away.test_client().get("/readyz")
    assert gone.status_code == 503 and gone.get_json()["ready"] is False
