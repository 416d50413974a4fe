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
    assert message.startswith("store unavailable: ")
    assert "not currently accepting connections" in message


def test_metrics_scrape_is_a_plain_503(app_on_a_store_gone_away):
    response = app_on_a_store_gone_away.test_client().get("/metrics")
    assert response.status_code == 503
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True).startswith("store unavailable: ")
