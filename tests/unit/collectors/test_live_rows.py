"""Live rows and counters come from the decoded event stream, not from commits.

The publisher's emitter is a recorder: the network is not what is tested here (the
integration and browser tests push through real Socket.IO).
"""
from __future__ import annotations

import random

from helpers.event_factory import T0, hard_time_limit, lifecycle, task
from lookout.collectors import merge
from lookout.collectors.live_rows import EarlyRows
from lookout.collectors.push import LivePublisher
from lookout.collectors.writer import BatchSummary


class Recorder:
    def __init__(self):
        self.sent = []

    def emit(self, event, data, to=None, namespace=None):
        self.sent.append((event, to, data))

    def by_room(self, room):
        return [data for _event, to, data in self.sent if to == room]


def test_rows_folded_from_events_in_any_order_equal_the_writers_and_copies_count_once():
    events = lifecycle("t1", T0) + lifecycle("t2", T0 + 1, name="proj.other")
    expected = {e.uuid: merge.fold(None, [x for x in events if x.uuid == e.uuid])
                for e in events}
    for seed in range(5):
        shuffled = events + events[:3]  # a redelivery: three copies
        random.Random(seed).shuffle(shuffled)
        rows = EarlyRows()
        states = []
        for start in range(0, len(shuffled), 3):
            changed, new_states = rows.fold(shuffled[start:start + 3])
            states += new_states
        assert sorted(states) == sorted(merge.TRANSITIONS[e.type][0] for e in events)
        assert {uuid: rows._rows[uuid] for uuid in expected} == expected


def test_a_final_state_sent_twice_counts_once_live_as_in_the_store():
    for seed in range(5):
        events = hard_time_limit("tl", T0) + lifecycle("ok", T0)
        random.Random(seed).shuffle(events)
        rows, states = EarlyRows(), []
        for start in range(0, len(events), 2):
            states += rows.fold(events[start:start + 2])[1]
        assert sorted(states) == sorted(["PENDING", "RECEIVED", "STARTED", "FAILURE",
                                        "PENDING", "RECEIVED", "STARTED", "SUCCESS"])
        assert rows._rows["tl"]["exception"] == "TimeLimitExceeded(1,)"


def test_a_commit_fills_what_the_live_row_missed_but_never_turns_it_back():
    rows = EarlyRows()
    # Heard from task-started on (the collector started after the task was received).
    rows.fold([task("task-started", "t1", T0 + 0.02, "w1@host"),
               task("task-succeeded", "t1", T0 + 0.3, "w1@host", result="3", runtime=0.2)])
    stored = merge.fold(None, [task("task-received", "t1", T0 + 0.01, "w1@host",
                                    name="proj.add", args="(1, 2)", kwargs="{}", retries=0),
                               task("task-started", "t1", T0 + 0.02, "w1@host")])
    filled = rows.fill_from(stored)  # an older batch's row: STARTED, but with the name
    assert filled["name"] == "proj.add" and filled["args"] == "(1, 2)"
    assert filled["state"] == "SUCCESS" and filled["runtime"] == 0.2
    assert rows.fill_from(stored) is None  # nothing new: no second push seconds late
    unseen = dict(stored, uuid="t9")
    assert rows.fill_from(unseen) == unseen  # a task only the store told about


def test_the_publisher_pushes_observed_events_before_any_commit():
    recorder = Recorder()
    publisher = LivePublisher(recorder)
    publisher.early = True
    events = lifecycle("t1", T0)
    publisher.observe(events[:2])
    publisher.observe(events[2:] + events[:1])  # with a copy
    assert publisher.flush() > 0
    (overview,) = recorder.by_room("overview")
    assert overview["events"] == 4 and overview["counts"] == {
        "PENDING": 1, "RECEIVED": 1, "STARTED": 1, "SUCCESS": 1}
    (tasks,) = recorder.by_room("tasks")
    assert [row["state"] for row in tasks["tasks"]] == ["SUCCESS"]

    # The commit of the first batch arrives late, STARTED: counted already, and the live
    # row knew all it says: nothing is pushed (least of all the row turned back).
    recorder.sent.clear()
    summary = BatchSummary(events=3, stored=3, states={"RECEIVED": 1},
                           tasks=[merge.fold(None, events[:3])])
    publisher(summary)
    publisher.flush()
    (overview,) = recorder.by_room("overview")
    assert overview["events"] == 0 and overview["counts"] == {}
    assert recorder.by_room("tasks") == []


def test_a_collector_without_the_live_lease_pushes_nothing():
    recorder = Recorder()
    publisher = LivePublisher(recorder)
    publisher.early = True
    publisher.gate = lambda: False  # the other collector of a Redis pair holds it
    publisher.observe(lifecycle("t1", T0))
    assert publisher.flush() == 0 and recorder.sent == []


def test_the_live_lease_goes_to_one_of_a_pair_and_to_a_restarted_self_at_once(sqlite_url):
    import os
    import subprocess
    import sys

    from sqlalchemy import update

    from lookout.collectors.push import LiveLease
    from lookout.core.store.db import make_engine
    from lookout.core.store.models import Lease

    engine = make_engine(sqlite_url)
    try:
        east, west = LiveLease(engine, "east"), LiveLease(engine, "west")
        assert east() and not west()  # one pushes, the other would double every counter
        crashed_and_back = LiveLease(engine, "east")  # same name, same machine...
        assert not crashed_and_back()  # ...but while its first process lives, it waits
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        with engine.begin() as conn:  # east's first process, SIGKILLed: its pid is gone
            conn.execute(update(Lease).values(holder=east.lease.holder.replace(
                f":{os.getpid()}:", f":{dead.pid}:")))
        crashed_and_back._checked = float("-inf")
        assert crashed_and_back() and not west()
        crashed_and_back.release()
        west._checked = float("-inf")
        assert west()
    finally:
        engine.dispose()


def test_a_dead_live_holder_is_replaced_before_pages_call_updates_stalled(sqlite_url):
    """Pages say "live updates stalled" after 10 s without a beat; the pair's other
    collector must be pushing by then (a trial saw 19 s with the former 15 s lease)."""
    from lookout.collectors.push import LiveLease
    from lookout.core.store.db import make_engine

    now = [1000.0]
    engine = make_engine(sqlite_url)
    try:
        east = LiveLease(engine, "east", clock=lambda: now[0])
        west = LiveLease(engine, "west", clock=lambda: now[0])
        assert east() and not west()
        died_at = now[0]  # east renewed at 1000, then was SIGKILLed
        taken_at = None
        while taken_at is None and now[0] < died_at + 30:
            now[0] += 0.5  # west asks every push tick; it checks every RENEW s
            if west():
                taken_at = now[0]
        assert taken_at is not None and taken_at - died_at <= LiveLease.TTL + LiveLease.RENEW
        assert taken_at - died_at < 10.0
    finally:
        engine.dispose()
