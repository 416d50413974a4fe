"""The audit trail: one record per action, allowed or refused; filters, pages, retention."""
from __future__ import annotations

import pytest

from helpers.control import app_with_users, audit_records, login
from helpers.factories import add_worker
from lookout.core.config import Settings
from lookout.dashboard.audit.service import AuditService

WORKER = "celery@audit-test"


@pytest.fixture
def app(database_url):
    # The broker is never reached: every request here is refused or invalid.
    app = app_with_users(database_url, "redis://127.0.0.1:1/0")
    add_worker(app.extensions["lookout.engine"], WORKER)
    yield app
    app.extensions["lookout.engine"].dispose()


def test_each_request_leaves_exactly_one_record(app):
    anonymous = app.test_client()
    anonymous.post(f"/api/v1/workers/{WORKER}/pool/grow", json={"n": 3})
    viewer = app.test_client()
    viewer_csrf = login(viewer, "vic")
    viewer.post(f"/api/v1/workers/{WORKER}/shutdown", json={},
                headers={"X-CSRF-Token": viewer_csrf})
    operator = app.test_client()
    csrf = login(operator, "otto")
    operator.post("/api/v1/rate-limits", json={"task_name": "x", "rate_limit": "nope"},
                  headers={"X-CSRF-Token": csrf})

    records = [r for r in audit_records(app) if r["action"] != "login"]
    assert [(r["actor"], r["role"], r["action"], r["outcome"], r["status"]) for r in records] == [
        ("otto", "operator", "rate_limit", "invalid", 400),
        ("vic", "viewer", "worker.shutdown", "refused", 403),
        ("anonymous", None, "worker.pool_grow", "refused", 401),
    ]
    grow = records[-1]
    assert grow["targets"] == [WORKER]
    assert grow["parameters"] == {"n": 3}
    assert grow["remote_addr"] == "127.0.0.1"
    assert grow["timestamp"] > 0
    assert "rate_limit" in records[0]["message"]


def test_api_filters_and_pages(app):
    service: AuditService = app.extensions["lookout.audit"]
    for i in range(7):
        service.record(actor="ada" if i % 2 else "otto", role="operator", remote_addr="10.0.0.1",
                       action="task.revoke", outcome="ok", status=200, targets=[f"t-{i}"],
                       parameters={"terminate": False}, replies=[], timestamp=1000.0 + i)
    client = app.test_client()
    login(client, "otto")

    first = client.get("/api/v1/audit?action=task.revoke&limit=3").get_json()
    assert [r["targets"] for r in first["items"]] == [["t-6"], ["t-5"], ["t-4"]]
    second = client.get(f"/api/v1/audit?action=task.revoke&limit=3&cursor={first['next_cursor']}")
    assert [r["targets"] for r in second.get_json()["items"]] == [["t-3"], ["t-2"], ["t-1"]]

    by_actor = client.get("/api/v1/audit?actor=ada&action=task.revoke").get_json()["items"]
    assert {r["actor"] for r in by_actor} == {"ada"} and len(by_actor) == 3
    by_target = client.get("/api/v1/audit?target=t-1").get_json()["items"]
    assert [r["targets"] for r in by_target] == [["t-1"]]  # exact, not t-1x
    window = client.get("/api/v1/audit?since=1002&until=1003").get_json()["items"]
    assert [r["targets"] for r in window] == [["t-3"], ["t-2"]]
    assert client.get("/api/v1/audit?sort=actor").status_code == 400
    assert client.get("/api/v1/audit?cursor=abc").status_code == 400
    assert client.get(f"/api/v1/audit/{first['items'][0]['id']}").get_json()["targets"] == ["t-6"]


def test_viewers_cannot_read_the_trail_but_operators_see_the_page(app):
    viewer = app.test_client()
    login(viewer, "vic")
    assert viewer.get("/api/v1/audit").status_code == 403
    assert viewer.get("/audit").status_code == 403
    operator = app.test_client()
    login(operator, "otto")
    page = operator.get("/audit").get_data(as_text=True)
    assert 'id="audit-table"' in page and "js/audit.js" in page and "<script>" not in page


def test_retention_is_separate_and_longer_than_task_history(database_url):
    settings = Settings.load({})
    assert settings.audit_retention > settings.retention
    assert Settings.load({"LOOKOUT_AUDIT_RETENTION": "30d"}).audit_retention == 30 * 86400

    from lookout.core.store.db import make_engine

    engine = make_engine(database_url)
    now = [10_000_000.0]
    service = AuditService(engine, retention=86400.0, clock=lambda: now[0])
    service.record(actor="a", action="first", outcome="ok", status=200)  # prunes once
    service.record(actor="a", action="old", outcome="ok", status=200,
                   timestamp=now[0] - 2 * 86400)
    assert {r["action"] for r in service.list({})["items"]} == {"first", "old"}
    now[0] += 7200  # past the hourly prune interval
    service.record(actor="a", action="new", outcome="ok", status=200)
    assert {r["action"] for r in service.list({})["items"]} == {"first", "new"}
    engine.dispose()
