"""/api/v1/failures: groups count what was sent again from Lookout (task_links)."""
from __future__ import annotations

import pytest

from helpers.factories import add_task
from lookout.core.store.models import TaskLink

NOW = 1_800_000_000.0


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url, clock=lambda: NOW)


def fail(engine, uuid, message, at):
    add_task(engine, uuid=uuid, state="FAILURE", timestamp=at, name="proj.charge",
             exception=f"ValueError('{message}')", traceback="Traceback ...\nValueError")


def test_failures_sent_again_are_counted_as_retried_and_still_listed(app, client, engine):
    """A bulk retry left the group looking untouched: an on-call engineer could not tell
    the failures dealt with from those still waiting."""
    for n in range(3):
        fail(engine, f"card-{n}", "card declined", NOW - 60 + n)
    fail(engine, "disk-0", "disk full", NOW - 30)
    before = client.get("/api/v1/failures?window=1h").get_json()
    assert before["retried"] == 0 and {g["retried"] for g in before["groups"]} == {0}

    with engine.begin() as conn:  # what control/retry.py records when it sends a retry
        conn.execute(TaskLink.__table__.insert(), [
            {"task_uuid": f"again-{n}", "retry_of": f"card-{n}", "created_by": "otto",
             "created_at": NOW - 5 + n} for n in (0, 2)])
    after = client.get("/api/v1/failures?window=1h").get_json()  # not the cached groups
    cards = next(g for g in after["groups"] if g["count"] == 3)
    disk = next(g for g in after["groups"] if g["count"] == 1)
    assert (cards["retried"], disk["retried"], after["retried"], after["failures"]) == (2, 0, 2, 4)
    assert "retried_ids" not in cards and "task_ids" not in cards
    detail = client.get(f"/api/v1/failures/{cards['fingerprint']}?window=1h").get_json()
    assert sorted(detail["retried_ids"]) == ["card-0", "card-2"]
    assert sorted(detail["task_ids"]) == ["card-0", "card-1", "card-2"]
