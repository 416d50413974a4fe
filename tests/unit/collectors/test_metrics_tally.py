"""The metrics writer's tallied `accumulate` against the plain per-event reading of the rules.

`metrics_writer.accumulate` groups a batch's events by their raw labels before it works
out series (a hot path). The reference below adds every event's series one at a time,
as the module docstring states the rules; both must give the same totals and admit the
same capped label values, over random batches that overflow every cap.
"""
from __future__ import annotations

import math
import random

import pytest

from lookout.collectors import metrics_writer as mw
from lookout.collectors.label_caps import OTHER, LabelCaps
from lookout.collectors.events import Event

TYPES = ("task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
         "task-retried", "task-revoked", "task-rejected")


FINAL_AT = {"task-succeeded": "succeeded_at", "task-failed": "failed_at",
            "task-revoked": "revoked_at", "task-rejected": "rejected_at"}


def per_event(events, rows, caps: LabelCaps, before) -> mw.Totals:
    totals = mw.Totals()
    counted = set()
    for event in events:
        row = rows.get(event.uuid) or {}
        name = caps.value("name", row.get("name"))
        host = caps.value("hostname", mw.host_label(event.hostname))
        task = {"name": name, "hostname": host,
                "queue_name": caps.value("queue", row.get("queue") or row.get("routing_key"))}
        metric = mw.TASK_COUNTERS.get(event.type)
        # A final transition counts once per task: not if stored before, nor a second time.
        at = FINAL_AT.get(event.type)
        if at is not None:
            stored = (before.get(event.uuid) or {}).get(at) is not None
            if stored or (event.uuid, event.type) in counted:
                totals.add("flower_events_total", {"worker": host, "type": event.type,
                                                   "task": name})
                runtime = event.fields.get("runtime")
                if event.type == "task-succeeded" and isinstance(runtime, (int, float)):
                    totals.observe("flower_task_runtime_seconds",
                                   {"worker": host, "task": name}, runtime)
                continue
            counted.add((event.uuid, event.type))
        if metric == "celery_task_failed_total":
            totals.add(metric, {**task, "exception": caps.value(
                "exception", mw.exception_type(event.fields.get("exception")))})
        elif metric is not None:
            totals.add(metric, task)
        totals.add("flower_events_total", {"worker": host, "type": event.type, "task": name})
        runtime = event.fields.get("runtime")
        if event.type == "task-succeeded" and isinstance(runtime, (int, float)):
            totals.observe("celery_task_runtime", task, runtime)
            totals.observe("flower_task_runtime_seconds", {"worker": host, "task": name},
                           runtime)
        wait = row.get("queue_wait")
        if event.type == "task-started" and isinstance(wait, (int, float)) and wait >= 0:
            totals.observe("celery_task_queue_wait_time", task, wait)
    return totals


def random_batch(rng: random.Random, size: int):
    rows, events = {}, []
    for i in range(size // 3):
        rows[f"t{i}"] = {
            "name": rng.choice([None, "a.add", "b.mul", "c.div", "d.x", "e.y"]),
            "queue": rng.choice([None, "celery", "high"]),
            "routing_key": rng.choice([None, "low"]),
            "queue_wait": rng.choice([None, -1.0, 0.0, 0.003, 0.2, 4.0, 30.0, float("nan")]),
        }
    for _ in range(size):
        kind = rng.choice(TYPES)
        fields = {}
        if kind == "task-succeeded":
            fields["runtime"] = rng.choice([0.001, 0.01, 0.07, 1.0, 9.9, 1e6, 3])
            if rng.random() < 0.1:
                del fields["runtime"]
        if kind in ("task-failed", "task-retried") and rng.random() < 0.9:
            fields["exception"] = rng.choice(["KeyError('k')", "ValueError(1)", "oops",
                                              "boom.Err('x')", "E1()", "E2()"])
        uuid = f"t{rng.randrange(size // 3 + 5)}"  # some tasks have no row
        host = rng.choice(["w1", "w2", "w3", "w4", "gen101@web", "gen202@web", "gen3@api"])
        events.append(Event(kind, host, 1e9, 1e9, 0, None,
                            uuid, fields))
    # Stored rows: some tasks already had a final transition, so theirs are repeats.
    before = {uuid: {at: rng.choice([None, None, 1e9 - 5]) for at in FINAL_AT.values()}
              for uuid in rows if rng.random() < 0.7}
    return events, rows, before


@pytest.mark.parametrize("seed", range(20))
def test_tallied_accumulate_equals_the_per_event_rules(seed):
    rng = random.Random(seed)
    events, rows, before = random_batch(rng, 400)
    limits = {"name": 3, "hostname": 3, "queue": 2, "exception": 3}
    fast_caps = LabelCaps(limits, clock=lambda: 1000.0)
    slow_caps = LabelCaps(limits, clock=lambda: 1000.0)
    fast_caps._admitted = {kind: {} for kind in limits}
    slow_caps._admitted = {kind: {} for kind in limits}

    fast = mw.accumulate(events, rows, fast_caps, before)
    slow = per_event(events, rows, slow_caps, before)

    assert fast.keys() == slow.keys()
    for key, value in slow.items():
        assert math.isclose(fast[key], value, rel_tol=1e-12), key
    assert fast_caps._admitted == slow_caps._admitted
    assert fast_caps._pending == slow_caps._pending
    assert any(labels for (_, labels) in fast if ("name", OTHER) in labels)
    # Repeats happened, and counted as events only.
    failed = sum(1 for e in events if e.type == "task-failed")
    assert sum(v for (m, _), v in fast.items() if m == "celery_task_failed_total") < failed
    assert sum(v for (m, labels), v in fast.items() if m == "flower_events_total"
               and ("type", "task-failed") in labels) == failed


def test_bucket_label_matches_prometheus_bounds():
    assert mw.bucket_label(0.005) == "0.005"
    assert mw.bucket_label(0.0051) == "0.01"
    assert mw.bucket_label(-3) == "0.005"
    assert mw.bucket_label(10.0) == "10.0"
    assert mw.bucket_label(10.5) == "+Inf"
    assert mw.bucket_label(float("inf")) == "+Inf"
    assert mw.bucket_label(float("nan")) == "+Inf"


def test_task_sending_processes_take_one_hostname_slot_per_host_not_per_process():
    """Celery names a process that sends tasks `gen<pid>@<host>`: fifty web processes were
    fifty hostname labels, and with the cap full a new real worker counted as "other"."""
    caps = LabelCaps({"name": 10, "hostname": 3, "queue": 10, "exception": 10})
    caps._admitted = {kind: {} for kind in caps.caps}  # a fresh store
    rows = {f"t{i}": {"name": "a.add", "queue": "celery"} for i in range(50)}
    sent = [Event("task-sent", f"gen{1000 + i}@web-1", 1e9, 1e9, 0, None, f"t{i}", {})
            for i in range(50)]
    ran = [Event("task-succeeded", "celery@worker-7", 1e9, 1e9, 0, None, f"t{i}",
                 {"runtime": 0.1}) for i in range(50)]
    totals = mw.accumulate(sent + ran, rows, caps, {})
    workers = {dict(labels)["worker"]: value for (metric, labels), value in totals.items()
               if metric == "flower_events_total"}
    assert workers == {"gen@web-1": 50.0, "celery@worker-7": 50.0}
