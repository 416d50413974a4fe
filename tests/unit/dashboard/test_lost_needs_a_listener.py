"""A silent worker's tasks are lost only if Lookout was listening through the silence.

With every collector down, disconnected or just reconnected, nobody could have heard the
worker: calling its running task lost offered a retry that ran it a second time (found
in an outage trial with a SIGKILLed collector). Real SQLite and PostgreSQL stores.
"""
from __future__ import annotations

import time

import pytest

from helpers.control import csrf_from
from helpers.factories import add_task, add_worker, set_collector_status

LOST_AFTER = 60.0


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url, lost_after=LOST_AFTER)


@pytest.fixture
def running_on_a_silent_worker(engine):
    now = time.time()
    add_worker(engine, "celery@quiet", last_heartbeat=now - 120, last_event_ts=now - 120)
    add_task(engine, uuid="running-1", name="proj.slow", state="STARTED",
             worker="celery@quiet", timestamp=now - 150, received_at=now - 150,
             started_at=now - 150, args="()", kwargs="{}")
    return "running-1"


def verdicts(client, task_id: str) -> tuple:
    listed = client.get("/api/v1/tasks?lost=true").get_json()
    detail = client.get(f"/api/v1/tasks/{task_id}").get_json()
    trouble = client.get("/api/v1/trouble").get_json()
    return ([t["uuid"] for t in listed["items"]], detail["lost"],
            [t["uuid"] for t in trouble["lost"]])


def test_listened_to_for_the_whole_silence_the_task_is_lost(client, engine,
                                                             running_on_a_silent_worker):
    set_collector_status(engine, connected_since=time.time() - 600)
    listed, detail, trouble = verdicts(client, running_on_a_silent_worker)
    assert listed == trouble == [running_on_a_silent_worker]
    assert "has not been heard for" in detail
    assert client.get("/api/v1/trouble").get_json()["silence_judged"] is True


@pytest.mark.parametrize("collector", [
    None,  # no collector ever ran
    {"updated_at": -30},  # killed: its row stopped being updated 30 s ago
    {"connected": False, "connected_since": None},  # disconnected from the broker
    {"connected_since": -20},  # reconnected 20 s ago: it heard 20 s of the silence
], ids=["none", "stale", "disconnected", "just-reconnected"])
def test_silence_nobody_heard_loses_nothing_and_is_not_retried(
        client, engine, running_on_a_silent_worker, collector):
    if collector is not None:
        now = time.time()
        set_collector_status(engine, **{
            k: (now + v if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
            for k, v in collector.items()})
    listed, detail, trouble = verdicts(client, running_on_a_silent_worker)
    assert listed == trouble == [] and detail is None
    assert client.get("/api/v1/trouble").get_json()["silence_judged"] is False
    csrf = csrf_from(client.get("/controls").get_data(as_text=True))
    refused = client.post(f"/api/v1/tasks/{running_on_a_silent_worker}/retry", json={},
                          headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 409
    assert "only finished or lost tasks" in refused.get_json()["error"]["message"]


def test_a_worker_that_said_goodbye_is_believed_whoever_listens(client, engine):
    """worker-offline was heard: no listener is needed to know the worker left."""
    now = time.time()
    add_worker(engine, "celery@gone", online=False, last_heartbeat=now - 30)
    add_task(engine, uuid="running-2", name="proj.slow", state="STARTED",
             worker="celery@gone", timestamp=now - 60, started_at=now - 60)
    listed, detail, _ = verdicts(client, "running-2")
    assert listed == ["running-2"] and "went offline" in detail


def test_a_lost_task_never_started_is_given_back_by_the_broker_and_not_retried(
        client, engine, app):
    """An on-call trial retried a prefetched task of a SIGKILLed worker from the Trouble
    page: RabbitMQ delivered the unacknowledged original too, and it ran twice."""
    from sqlalchemy import update

    from lookout.core.store.models import Worker
    from lookout.core.trouble import REDELIVERY_WINDOW
    from lookout.dashboard.control.retry import plan

    now = time.time()
    set_collector_status(engine, connected_since=now - 600)
    add_worker(engine, "celery@dead", last_heartbeat=now - 120, last_event_ts=now - 120)
    for uuid, started in (("prefetched-1", None), ("running-2", now - 129)):
        add_task(engine, uuid=uuid, name="proj.report", state="STARTED" if started else
                 "RECEIVED", worker="celery@dead", timestamp=now - 130,
                 received_at=now - 130, started_at=started, args="()", kwargs="{}")
    detail = client.get("/api/v1/tasks/prefetched-1").get_json()
    assert detail["redelivery"] is True and "goes back to its queue" in detail["lost"]
    running = client.get("/api/v1/tasks/running-2").get_json()
    assert running["lost"] and running["redelivery"] is False
    trouble = client.get("/api/v1/trouble").get_json()["lost"]
    assert [(t["uuid"], t["redelivery"]) for t in trouble] == [
        ("running-2", False), ("prefetched-1", True)]  # the one needing someone first
    retrier = app.extensions["lookout.retry"]
    refused = {row["uuid"]: plan(row)["refused"]
               for row in retrier._rows(["prefetched-1", "running-2"])}
    assert refused["running-2"] is None
    assert "delivers it again by itself" in refused["prefetched-1"]
    # An hour on, nothing has brought it back: lost like any other, and retriable.
    with engine.begin() as conn:
        conn.execute(update(Worker).values(last_heartbeat=now - REDELIVERY_WINDOW - 1))
    late = client.get("/api/v1/tasks/prefetched-1").get_json()
    assert late["lost"] and late["redelivery"] is False
