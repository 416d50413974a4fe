"""eta and expires as epoch seconds, EXPIRED, "revoke pending", the ETA filter and tasks
Celery retried, through /api/v1 and the Flower API, on SQLite and PostgreSQL.

Rows are written by the collector's own write path from events shaped as a real Celery
5.7 worker sends them (helpers/event_factory.py), so what is checked is what a user sees.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from helpers.control import csrf_from
from helpers.event_factory import T0, iso, retried_by_celery, task
from lookout.collectors import task_writer

NOW = T0 + 10


@pytest.fixture
def app(make_app, database_url):
    app = make_app(database_url, clock=lambda: NOW)
    # What workers answer to a revoke; nothing leaves the process.
    app.extensions["lookout.control"].broadcaster = \
        lambda command, arguments, destination, timeout: [{"w1@a": {"ok": "flagged"}}]
    return app


def write(engine, events) -> None:
    """Store events as the collector does: timeline first, then the merged task rows."""
    with engine.begin() as conn:
        task_writer.save_tasks(conn, task_writer.insert_timeline(conn, events))


def received(uuid: str, t: float, eta: str | None, expires: str | None = None) -> list:
    fields = dict(name="sample.add", args="(1, 2)", kwargs="{}", root_id=uuid, retries=0,
                  eta=eta, expires=expires)
    return [task("task-sent", uuid, t, "client@web", queue="q1", exchange="",
                 routing_key="q1", **fields),
            task("task-received", uuid, t + 0.01, "w1@a", **fields)]


@pytest.fixture
def etas(engine):
    """Waiting for its ETA (sent by a client in another zone), expired at its ETA, revoked
    at its ETA by someone else, and one without an ETA."""
    paris = datetime.fromtimestamp(T0 + 100, timezone(timedelta(hours=1))).isoformat()
    write(engine, [
        *received("waiting", T0, paris, iso(T0 + 3600)),
        *received("expired", T0 + 1, iso(T0 + 50), iso(T0 + 40)),
        task("task-revoked", "expired", T0 + 50, "w1@a", terminated=False, signum=None,
             expired=True),
        *received("revoked", T0 + 2, iso(T0 + 200)),
        task("task-revoked", "revoked", T0 + 200, "w1@a", terminated=False, signum=None,
             expired=False),
        *received("plain", T0 + 3, None),
    ])


def post(client, path: str, body: dict | None = None):
    """A POST as the page makes it (auth is off here, the CSRF check is not)."""
    csrf = csrf_from(client.get("/tasks").get_data(as_text=True))
    return client.post(path, json=body or {}, headers={"X-CSRF-Token": csrf})


def items(client, query: str = "") -> dict[str, dict]:
    response = client.get(f"/api/v1/tasks?{query}")
    assert response.status_code == 200, response.get_json()
    return {item["uuid"]: item for item in response.get_json()["items"]}


def test_eta_and_expires_are_epoch_seconds_everywhere(client, etas):
    listed = items(client)
    assert (listed["waiting"]["eta"], listed["waiting"]["expires"]) == (T0 + 100, T0 + 3600)
    assert (listed["plain"]["eta"], listed["plain"]["expires"]) == (None, None)
    detail = client.get("/api/v1/tasks/waiting").get_json()
    assert (detail["eta"], detail["expires"]) == (T0 + 100, T0 + 3600)
    received_event = [e for e in detail["timeline"] if e["type"] == "task-received"][0]
    assert received_event["info"]["eta"] == T0 + 100


def test_eta_filter_and_sort(client, etas):
    assert set(items(client, f"eta_min={T0 + 60}")) == {"waiting", "revoked"}
    until = datetime.fromtimestamp(T0 + 100, timezone.utc).isoformat().replace("+00:00", "Z")
    assert set(items(client, f"eta_max={until}")) == {"waiting", "expired"}
    assert set(items(client, f"eta_min={T0 + 60}&eta_max={T0 + 150}")) == {"waiting"}
    response = client.get("/api/v1/tasks?sort=eta")
    assert [i["uuid"] for i in response.get_json()["items"]] == \
        ["expired", "waiting", "revoked", "plain"]  # no ETA last
    for query, parameter in (("eta_min=soon", "eta_min"), ("eta_max=1e300", "eta_max")):
        response = client.get(f"/api/v1/tasks?{query}")
        assert response.status_code == 400
        assert response.get_json()["error"]["parameter"] == parameter


def test_expired_is_a_kind_of_revoked(client, etas):
    assert set(items(client, "state=EXPIRED")) == {"expired"}
    assert set(items(client, "state=revoked")) == {"expired", "revoked"}
    assert set(items(client, "state=REVOKED&state=EXPIRED")) == {"expired", "revoked"}
    assert set(items(client, "state=EXPIRED,RECEIVED")) == {"expired", "waiting", "plain"}
    listed = items(client)
    assert {k: (v["state"], v["expired"]) for k, v in listed.items()} == {
        "expired": ("REVOKED", True), "revoked": ("REVOKED", False),
        "waiting": ("RECEIVED", None), "plain": ("RECEIVED", None)}
    assert client.get("/api/v1/tasks?state=EXPIRED").get_json()["total"] == 1


def test_a_revoke_sent_by_lookout_is_pending_until_its_task_revoked(client, engine, etas):
    assert items(client)["waiting"]["revoke_pending"] is False
    assert post(client, "/api/v1/tasks/waiting/revoke").status_code == 200
    # The worker keeps the ETA task and says nothing until the ETA: the events still say
    # RECEIVED, the history says a revoke is on its way.
    item = items(client)["waiting"]
    assert (item["state"], item["revoke_pending"], item["revoke_requested_at"]) == \
        ("RECEIVED", True, NOW)
    detail = client.get("/api/v1/tasks/waiting").get_json()
    assert (detail["revoke_pending"], detail["revoke_requested_at"]) == (True, NOW)
    write(engine, [task("task-revoked", "waiting", T0 + 100, "w1@a", terminated=False,
                        signum=None, expired=False)])
    item = items(client)["waiting"]
    assert (item["state"], item["revoke_pending"], item["revoke_requested_at"]) == \
        ("REVOKED", False, NOW)


def test_a_revoked_task_that_runs_anyway_is_not_pending(client, engine, etas):
    """A plain revoke does not stop a running task: once it started, nothing is pending,
    though the request stays on record."""
    assert post(client, "/api/v1/tasks/plain/revoke").status_code == 200
    assert items(client)["plain"]["revoke_pending"] is True
    write(engine, [task("task-started", "plain", T0 + 5, "w1@a")])
    item = items(client)["plain"]
    assert (item["state"], item["revoke_pending"], item["revoke_requested_at"]) == \
        ("STARTED", False, NOW)


def test_every_way_lookout_revokes_is_noted(client, etas):
    bulk = post(client, "/api/v1/tasks/revoke", {
        "filters": {"state": "RECEIVED", "eta_min": str(T0 + 60)}, "dry_run": False,
        "wait": True})
    assert bulk.status_code == 200 and bulk.get_json()["targets"] == ["waiting"]
    assert post(client, "/api/task/revoke/plain").status_code == 200  # Flower's revoke
    assert post(client, "/api/task/revoke/" + "x" * 300).status_code == 200  # any id
    listed = items(client)
    assert {k for k, v in listed.items() if v["revoke_pending"]} == {"waiting", "plain"}
    assert listed["revoked"]["revoke_requested_at"] is None


def test_a_revoke_is_noted_when_it_was_sent_not_after_the_reply_wait(make_app, database_url,
                                                                       etas):
    now = [NOW]
    app = make_app(database_url, clock=lambda: now[0])

    def broadcaster(command, arguments, destination, timeout):
        now[0] += timeout + 5  # the workers' replies took the whole wait, and more
        return [{"w1@a": {"ok": "flagged"}}]
    app.extensions["lookout.control"].broadcaster = broadcaster
    client = app.test_client()
    sent = {}
    for uuid, path, body in [
            ("waiting", "/api/v1/tasks/waiting/revoke", {"terminate": True}),
            ("plain", "/api/task/revoke/plain", None),  # Flower's
            ("waiting", "/api/v1/tasks/revoke", {  # bulk, the same task again
                "filters": {"state": "RECEIVED", "eta_min": str(T0 + 60)},
                "dry_run": False, "wait": True})]:
        sent[uuid] = now[0]
        assert post(client, path, body).status_code == 200
        assert now[0] > sent[uuid]
        assert items(client)[uuid]["revoke_requested_at"] == sent[uuid], path


def test_the_flower_api_keeps_flowers_eta_text(client, etas):
    info = client.get("/api/task/info/waiting").get_json()
    # Celery's isoformat() of the instant; in UTC, whatever offset the sender used.
    assert (info["eta"], info["expires"]) == (iso(T0 + 100), iso(T0 + 3600))
    assert info["eta"] == "2023-11-14T22:15:00+00:00"
    listed = client.get("/api/tasks?limit=10").get_json()
    assert listed["expired"]["eta"] == iso(T0 + 50) and listed["plain"]["eta"] is None
    assert listed["expired"]["state"] == "REVOKED"  # as Flower: expiry is a revoke


def test_a_task_celery_retried_is_one_node_never_its_own_child(client, engine):
    write(engine, retried_by_celery("solo", T0))
    detail = client.get("/api/v1/tasks/solo").get_json()
    assert (detail["state"], detail["retries"], detail["parent_id"]) == ("SUCCESS", 2, None)
    assert detail["children"] == [] and len(detail["retry_history"]) == 2
    assert items(client, "parent_id=solo") == {}
    tree = client.get("/api/v1/workflows/solo").get_json()["tree"]
    assert (tree["uuid"], tree["retry_count"], tree["children"], tree["retries"]) == \
        ("solo", 2, [], [])
    assert client.get("/api/task/info/solo").get_json()["children"] == []
