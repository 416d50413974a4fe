"""The task row must depend on the set of events only: every order, duplicates, splits."""
from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from helpers.event_factory import T0, retried_by_celery, task
from lookout.collectors import merge
from lookout.core.store.models import Task, TaskEvent

U = "5f1c0b3e-task"


def success():
    return [
        task("task-sent", U, T0, "client@web", name="proj.add", args="(1, 2)", kwargs="{}",
             retries=0, queue="math", exchange="", routing_key="math"),
        task("task-received", U, T0 + 1, "w1@a", name="proj.add", args="(1, 2)",
             kwargs="{}", retries=0),
        task("task-started", U, T0 + 2, "w1@a"),
        task("task-succeeded", U, T0 + 5, "w1@a", result="3", runtime=2.5),
    ]


def failure():
    return [
        task("task-sent", U, T0, "client@web", name="proj.div", args="(1, 0)", kwargs="{}",
             queue="celery"),
        task("task-received", U, T0 + 1, "w2@a", name="proj.div", args="(1, 0)", kwargs="{}"),
        task("task-started", U, T0 + 2, "w2@a"),
        task("task-failed", U, T0 + 3.5, "w2@a", exception="ZeroDivisionError()",
             traceback="Traceback ... ZeroDivisionError"),
    ]


def retried_twice_then_success():
    """Retries with countdown: each retry is received again with an eta and retries=n."""
    events = [task("task-received", U, T0, "w1@a", name="proj.fetch", args="('x',)",
                   kwargs="{}", retries=0),
              task("task-started", U, T0 + 1, "w1@a")]
    for n, host in ((1, "w2@a"), (2, "w3@a")):
        base = T0 + 10 * n
        events += [
            task("task-retried", U, base, events[-1].hostname, exception=f"Timeout({n})",
                 traceback=f"tb {n}"),
            task("task-received", U, base + 0.5, host, name="proj.fetch", args="('x',)",
                 kwargs="{}", retries=n, eta=f"2023-11-14T22:13:{20 + n}+00:00"),
            task("task-started", U, base + 5, host),
        ]
    events.append(task("task-succeeded", U, T0 + 30, "w3@a", result="'ok'", runtime=4.0))
    return events


def revoked():
    return [
        task("task-sent", U, T0, "client@web", name="proj.slow", args="()", kwargs="{}"),
        task("task-received", U, T0 + 1, "w1@a", name="proj.slow", args="()", kwargs="{}"),
        task("task-started", U, T0 + 2, "w1@a"),
        task("task-revoked", U, T0 + 3, "w1@a", terminated=True, signum=9, expired=False),
    ]


def rejected():
    return [
        task("task-received", U, T0, "w1@a", name="proj.bad", args="()", kwargs="{}"),
        task("task-rejected", U, T0 + 0.1, "w1@a", requeue=False),
    ]


def sent_only():
    return [task("task-sent", U, T0, "client@web", name="proj.add", args="(1,)",
                 kwargs="{}", queue="celery", eta="2023-11-14T23:00:00+00:00")]


def celery_retry_of_a_top_level_task():
    return retried_by_celery(U, T0)


def expired_at_its_eta():
    """sample.add sent with countdown=1, expires=0.5: received at once, and at its ETA
    the worker finds it expired and revokes it (Celery 5.7)."""
    described = dict(name="sample.add", args="(1, 2)", kwargs="{}", root_id=U, retries=0,
                     eta="2023-11-14T22:13:21.000000+00:00",
                     expires="2023-11-14T22:13:20.500000+00:00")
    return [task("task-sent", U, T0, "client@web", queue="q1", exchange="", routing_key="q1",
                 **described),
            task("task-received", U, T0 + 0.006, "w1@a", **described),
            task("task-revoked", U, T0 + 1.001, "w1@a", terminated=False, signum=None,
                 expired=True)]


SEQUENCES = [success, failure, retried_twice_then_success, revoked, rejected, sent_only,
             celery_retry_of_a_top_level_task, expired_at_its_eta]


def orders(events, limit=5000, seed=7):
    """Every permutation when there are few, else a fixed-seed sample of them."""
    if len(events) <= 7:
        yield from itertools.permutations(events)
        return
    rng = random.Random(seed)
    for _ in range(limit):
        shuffled = list(events)
        rng.shuffle(shuffled)
        yield shuffled


def fold_in_pieces(events, rng):
    """Fold as the writer does: in batches cut at random points, row carried between."""
    row, start = None, 0
    while start < len(events):
        end = rng.randint(start + 1, len(events))
        row = merge.fold(row, events[start:end])
        start = end
    return row


@pytest.mark.parametrize("sequence", SEQUENCES, ids=lambda s: s.__name__)
def test_any_order_with_duplicates_gives_the_same_row(sequence):
    events = sequence()
    expected = merge.fold(None, events)
    rng = random.Random(42)
    checked = 0
    for order in orders(events):
        order = list(order)
        assert merge.fold(None, order) == expected
        with_copies = order + rng.sample(order, k=min(3, len(order)))
        rng.shuffle(with_copies)
        assert merge.fold(None, with_copies) == expected
        assert fold_in_pieces(with_copies, rng) == expected
        checked += 1
    assert checked == (math.factorial(len(events)) if len(events) <= 7 else 5000)


def test_success_row():
    row = merge.fold(None, success())
    assert row["state"] == "SUCCESS" and row["state_ts"] == T0 + 5
    assert row["worker"] == "w1@a"
    assert (row["name"], row["args"], row["result"]) == ("proj.add", "(1, 2)", "3")
    assert (row["queue"], row["exchange"], row["routing_key"]) == ("math", "", "math")
    assert row["timestamp"] == T0 and row["sent_at"] == T0
    assert row["runtime"] == 2.5 and row["queue_wait"] == 1.0
    assert row["updated_at"] == T0 + 5 + 0.01


def test_failure_row_takes_runtime_from_start_to_failure():
    row = merge.fold(None, failure())
    assert row["state"] == "FAILURE" and row["worker"] == "w2@a"
    assert row["exception"] == "ZeroDivisionError()"
    assert row["runtime"] == pytest.approx(1.5)


def test_retried_task_keeps_latest_times_and_counts_retries():
    row = merge.fold(None, retried_twice_then_success())
    assert row["state"] == "SUCCESS" and row["worker"] == "w3@a"
    assert row["retries"] == 2
    assert row["received_at"] == T0 + 20.5 and row["started_at"] == T0 + 25
    assert row["retried_at"] == T0 + 20 and row["timestamp"] == T0
    assert row["eta"] == T0 + 2  # 2023-11-14T22:13:22+00:00, from the latest receive
    assert row["exception"] == "Timeout(2)"  # no failure: the latest retry's
    assert row["queue_wait"] == pytest.approx(4.5)


def test_queue_wait_leaves_out_an_eta_or_countdown():
    """A retry's countdown read as queue wait ("998 ms" for a 1 s countdown, a trial):
    the wait for a worker starts when the task was due."""
    from datetime import datetime, timezone

    received, due = T0 + 10, T0 + 11
    eta = datetime.fromtimestamp(due, timezone.utc).isoformat()  # as Celery sends it

    def wait(started: float, **fields) -> float | None:
        return merge.fold(None, [task("task-received", U, received, name="t", **fields),
                                 task("task-started", U, started)])["queue_wait"]

    assert wait(due + 0.25, eta=eta) == pytest.approx(0.25)
    assert wait(due - 0.5, eta=eta) == 0  # started before its eta (clocks apart): never < 0
    assert wait(received + 2) == pytest.approx(2)  # no eta: from receipt, as before


def test_a_task_celery_retried_is_never_its_own_parent():
    row = merge.fold(None, celery_retry_of_a_top_level_task())
    assert (row["state"], row["retries"], row["root_id"]) == ("SUCCESS", 2, U)
    assert row["parent_id"] is None  # the retry messages name U itself: not a parent
    assert row["eta"] == pytest.approx(T0 + 0.61)  # the second retry's countdown
    child = [e._replace(uuid="child", fields={**e.fields, "parent_id": U})
             if e.fields.get("parent_id", U) == U else e
             for e in celery_retry_of_a_top_level_task()]
    assert merge.fold(None, child)["parent_id"] == U  # a real parent is kept, retried or not


def test_expiry_and_other_revokes_are_told_apart():
    row = merge.fold(None, expired_at_its_eta())
    assert (row["state"], row["expired"]) == ("REVOKED", True)
    assert (row["eta"], row["expires"]) == (T0 + 1, T0 + 0.5)
    assert merge.fold(None, revoked())["expired"] is False
    assert merge.fold(None, success())["expired"] is None  # no task-revoked: nothing said


def test_an_unreadable_eta_is_stored_as_null():
    events = [task("task-received", U, T0, "w1@a", name="n", eta="soon", expires="never")]
    row = merge.fold(None, events)
    assert (row["state"], row["eta"], row["expires"]) == ("RECEIVED", None, None)


def test_retries_counted_from_retried_events_when_receives_are_missing():
    events = [e for e in retried_twice_then_success() if e.type != "task-received"]
    assert merge.fold(None, events)["retries"] == 2
    assert merge.fold(None, events[:2], known_retries=5)["retries"] == 5


def test_late_retried_after_success_leaves_success():
    done = success()
    late = task("task-retried", U, T0 + 9, "w1@a", exception="Late()", traceback="tb")
    for events in (done + [late], [late] + done):
        row = merge.fold(None, events)
        assert row["state"] == "SUCCESS" and row["state_ts"] == T0 + 5
        assert row["retried_at"] == T0 + 9
    assert merge.fold(merge.fold(None, done), [late])["state"] == "SUCCESS"


def test_failure_wins_over_retry_for_exception():
    events = failure() + [task("task-retried", U, T0 + 1.8, "w2@a", exception="Retry()",
                               traceback="tb r")]
    for order in itertools.permutations(events[-2:]):
        row = merge.fold(merge.fold(None, events[:-2]), list(order))
        assert row["exception"] == "ZeroDivisionError()"


def test_description_from_received_arriving_last():
    events = success()
    received, rest = events[1], [events[2], events[3]]
    row = merge.fold(None, rest)
    assert row["name"] is None and row["timestamp"] == T0 + 2
    row = merge.fold(row, [received])
    assert (row["name"], row["args"], row["kwargs"]) == ("proj.add", "(1, 2)", "{}")
    assert row["timestamp"] == T0 + 1 and row["state"] == "SUCCESS"


def test_received_args_preferred_over_sent():
    sent = task("task-sent", U, T0 + 3, "client@web", name="n", args="sent-args")
    received = task("task-received", U, T0 + 1, "w1@a", name="n", args="received-args")
    assert merge.fold(None, [sent, received])["args"] == "received-args"
    assert merge.fold(None, [received, sent])["args"] == "received-args"


def test_sent_only_has_no_worker_and_queue_from_routing_key():
    row = merge.fold(None, sent_only())
    assert row["state"] == "PENDING" and row["worker"] is None
    bare = task("task-sent", "other", T0, "client@web", name="n", exchange="",
                routing_key="priority")
    assert merge.fold(None, [bare])["queue"] == "priority"
    direct = task("task-sent", "other", T0, "client@web", name="n", exchange="topic-x",
                  routing_key="a.b")
    assert merge.fold(None, [direct])["queue"] is None  # the key is not a queue name there


def test_row_has_exactly_the_task_columns():
    assert set(merge.new_row(U)) == set(Task.__table__.columns.keys())
    assert set(merge.TIMELINE_COLUMNS) < set(TaskEvent.__table__.columns.keys())


def test_fold_leaves_the_given_row_alone():
    row = merge.fold(None, success()[:2])
    before = dict(row)
    merge.fold(row, success()[2:])
    assert row == before


def test_timeline_row_keeps_small_fields_only():
    event = task("task-succeeded", U, T0, "w1@a", result="x" * 1000, runtime=1.5,
                 retries=1)
    row = merge.timeline_row(event)
    assert (row["task_uuid"], row["type"], row["hostname"]) == (U, "task-succeeded", "w1@a")
    assert json.loads(row["info"]) == {"runtime": 1.5, "retries": 1}
    assert merge.timeline_row(task("task-started", U, T0))["info"] is None
    assert merge.timeline_row(task("task-started", U, T0)._replace(clock=2**40))["clock"] \
        == merge.MAX_CLOCK


def test_client_stamped_sent_after_started_does_not_make_a_running_task_pending():
    """task-sent is stamped after publishing; a fast worker's events may predate it."""
    from lookout.collectors.merge import fold

    events = [task("task-received", "fast", T0, name="proj.add", args="()", kwargs="{}",
                   retries=0),
              task("task-started", "fast", T0 + 0.001),
              task("task-sent", "fast", T0 + 0.002, "client@web", name="proj.add",
                   args="()", kwargs="{}", retries=0, queue="celery")]
    for order in itertools.permutations(events):
        row = fold(None, order)
        assert row["state"] == "STARTED" and row["state_ts"] == T0 + 0.001
        assert row["worker"] == "w1@host"
