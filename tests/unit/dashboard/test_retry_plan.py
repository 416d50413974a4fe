"""Which recorded arguments a retry can rebuild exactly, and why the others are refused."""
from __future__ import annotations

import pytest
from celery.utils.saferepr import saferepr

from lookout.collectors.events import truncate
from lookout.dashboard.control.retry import RetryRefused, plan, rebuild


def row(**fields):
    base = {"uuid": "t1", "name": "proj.report", "state": "FAILURE", "args": "(1, 'a')",
            "kwargs": "{'full': True}", "queue": "reports", "exchange": "",
            "routing_key": "reports"}
    return {**base, **fields}


@pytest.mark.parametrize("value", [
    (1, "a"), [1, [2, {"x": None}]], (), ("é", b"ab", 1.5, -3, True, {1, 2}),
    ("it's \"quoted\"",), (10**30,),
])
def test_literals_round_trip(value):
    assert rebuild(saferepr(value, 1024), tuple, "args") == value


@pytest.mark.parametrize("text, reason", [
    (saferepr(("x" * 3000,), 1024), "1024-character"),
    (saferepr([[[[[1]]]]], 1024), "shortened by Celery's repr"),
    ("(datetime.date(2020, 1, 1),)", "not plain Python literals"),
    ("(<object object at 0x7f>,)", "not plain Python literals"),
    (truncate("(" + "1, " * 50 + ")", 20), "max field size"),
    ("{'a': 1}", "not a list"),
])
def test_what_cannot_be_rebuilt_is_refused_with_the_reason(text, reason):
    with pytest.raises(RetryRefused, match=reason):
        rebuild(text, tuple, "args")


def test_kwargs_must_be_a_dict_of_names():
    assert rebuild("{'a': [1]}", dict, "kwargs") == {"a": [1]}
    assert rebuild(None, dict, "kwargs") == {}
    with pytest.raises(RetryRefused, match="not a dict"):
        rebuild("{1: 2}", dict, "kwargs")


def test_plan_routes_to_the_original_queue_and_refuses_unfinished_tasks():
    ok = plan(row())
    assert ok["refused"] is None and ok["options"] == {"queue": "reports"}
    assert ok["args"] == (1, "a") and ok["kwargs"] == {"full": True}
    by_key = plan(row(queue=None, exchange="jobs", routing_key="jobs.x"))
    assert by_key["options"] == {"routing_key": "jobs.x", "exchange": "jobs"}
    assert "only finished or lost tasks" in plan(row(state="STARTED"))["refused"]
    assert "name is unknown" in plan(row(name=None))["refused"]
