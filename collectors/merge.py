"""Folding task events into a `tasks` row: pure functions, no database.

Events arrive out of order, duplicated, and in batches split at arbitrary points, so the
row must depend only on the *set* of events seen, never on their order. Every column is
therefore either a max/min over events (the per-transition timestamps, `timestamp`,
`retries`, `updated_at`), derived from such columns (`state`, `queue_wait`), or a value
chosen by a priority that the row itself records (the `*_at` of its source event type).

Other rules: `worker` is the host of the best worker-side event (task-sent comes from a
client); `timestamp` is the earliest sent/received time, else the earliest of any event;
`queue` comes from task-sent, or from its routing key when the exchange is the default
(nameless) one, where a routing key is a queue name; with a named exchange it is not.
A `parent_id` naming the task itself is ignored: Celery re-sends a retried task from
inside itself under the same id, so the retry of a top-level task names it as its own
parent (a retry is one more attempt of the same task, shown by `retries`, not a child).

Known limit of the priority rule: when the newest event of a source type lacks a field that
an older event of the same type carried, the value kept may depend on arrival order.
Celery always sends the fields concerned (name, args, kwargs; eta on every retry), so
this does not arise with real workers.
"""
from __future__ import annotations

import json
from collections import Counter
from json.encoder import c_make_encoder, encode_basestring_ascii
from typing import Any, Iterable, Mapping

from lookout.collectors.events import Event

FINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED"})

# Event type -> (state, rank, the row column keeping its latest timestamp).
TRANSITIONS: dict[str, tuple[str, int, str]] = {
    "task-sent": ("PENDING", 0, "sent_at"),
    "task-received": ("RECEIVED", 1, "received_at"),
    "task-started": ("STARTED", 2, "started_at"),
    "task-retried": ("RETRY", 3, "retried_at"),
    "task-succeeded": ("SUCCESS", 4, "succeeded_at"),
    "task-failed": ("FAILURE", 4, "failed_at"),
    "task-revoked": ("REVOKED", 4, "revoked_at"),
    "task-rejected": ("REJECTED", 4, "rejected_at"),
}
_AT_TO_TYPE = {column: kind for kind, (_, _, column) in TRANSITIONS.items()}

# Row field -> event types that may supply it, highest priority first. A lower-priority
# source only fills a field that is still empty once a higher one has been seen.
_DESCRIBED = ("task-received", "task-sent")
FIELD_SOURCES: dict[str, tuple[str, ...]] = {
    "name": _DESCRIBED, "args": _DESCRIBED, "kwargs": _DESCRIBED, "eta": _DESCRIBED,
    "expires": _DESCRIBED, "root_id": _DESCRIBED, "parent_id": _DESCRIBED,
    "queue": ("task-sent",), "exchange": ("task-sent",), "routing_key": ("task-sent",),
    "result": ("task-succeeded",), "runtime": ("task-succeeded",),
    "exception": ("task-failed", "task-retried"),
    "traceback": ("task-failed", "task-retried"),
    "expired": ("task-revoked",),
}
# Per event type, precomputed for the hot path: (field, columns of better sources).
_FIELD_PLAN: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    kind: tuple(
        (name, tuple(TRANSITIONS[s][2] for s in sources[:sources.index(kind)]))
        for name, sources in FIELD_SOURCES.items() if kind in sources)
    for kind in TRANSITIONS
}

# Timeline `info`: the event's own small fields; bulk (args, kwargs, result) lives on the task.
TIMELINE_FIELDS = ("name", "exception", "traceback", "runtime", "retries", "signum",
                   "terminated", "expired", "requeue", "eta", "queue")

_TIMELINE_FIELD_SET = frozenset(TIMELINE_FIELDS)  # events carry fewer fields than it names

MAX_CLOCK = 2**31 - 1

TASK_COLUMNS = (
    "uuid", "name", "state", "state_ts", "worker", "queue", "exchange", "routing_key",
    "args", "kwargs", "result", "exception", "traceback", "retries", "eta", "expires",
    "root_id", "parent_id", "timestamp", "sent_at", "received_at", "started_at",
    "succeeded_at", "failed_at", "retried_at", "revoked_at", "expired", "rejected_at",
    "runtime", "queue_wait", "updated_at",
)


def identity(event: Event) -> tuple[str | None, str, float, str]:
    """The key under which two copies of one event are the same (uq_task_events_identity)."""
    return (event.uuid, event.type, event.timestamp, event.hostname)


# Final event type -> the row column keeping its latest time.
FINAL_AT = {kind: column for kind, (state, _, column) in TRANSITIONS.items()
            if state in FINAL_STATES}


def final_repeat(event: Event, before: Mapping[str, Mapping[str, Any]],
                 finished: set[tuple[str | None, str]]) -> bool:
    """Whether `event` repeats a final transition its task already had: in its stored row
    (`before`: uuid -> row) or earlier in the same events (`finished`, which this fills).

    Counters of tasks skip repeats: Celery can send one twice (a hard time limit sends
    task-failed from the pool, then again from the request's on_timeout).
    """
    at = FINAL_AT.get(event.type)
    if at is None:
        return False
    key = (event.uuid, event.type)
    if key in finished:
        return True
    finished.add(key)
    old = before.get(event.uuid)
    return old is not None and old[at] is not None


def new_states(events: Iterable[Event], before: Mapping[str, Mapping[str, Any]]) -> Counter:
    """How many new events moved a task to each state, final repeats left out: what the
    live counters add for these events."""
    finished: set[tuple[str | None, str]] = set()
    return Counter(TRANSITIONS[event.type][0] for event in events
                   if not final_repeat(event, before, finished))


def new_row(uuid: str) -> dict[str, Any]:
    """An empty row for a task never seen before."""
    row: dict[str, Any] = dict.fromkeys(TASK_COLUMNS)
    row["uuid"] = uuid
    row["retries"] = 0
    return row


def fold(row: dict[str, Any] | None, events: Iterable[Event],
         known_retries: int = 0) -> dict[str, Any]:
    """Return `row` (or a new row) with `events` of one task applied; `row` is not changed.

    `known_retries` is the number of distinct task-retried events already stored for the
    task, which the row alone cannot tell (it keeps only the latest retry's time).

    This runs once per task per batch: the loop inlines `identity` and `state_key`
    (function calls were most of its cost) and skips events without fields.
    """
    seen: set[tuple] = set()
    distinct: list[Event] = []
    for event in events:
        key = (event.uuid, event.type, event.timestamp, event.hostname)
        if key not in seen and event.type in TRANSITIONS:
            seen.add(key)
            distinct.append(event)
    if not distinct:
        if row is None:
            raise ValueError("fold() needs a row or at least one task event")
        return dict(row)
    row = new_row(distinct[0].uuid) if row is None else dict(row)
    worker_key = _worker_key(row)
    had_origin = row["sent_at"] is not None or row["received_at"] is not None
    retried = 0
    for event in distinct:
        kind, timestamp, fields = event.type, event.timestamp, event.fields
        if fields:  # an event without fields has nothing for _apply_fields to take
            _apply_fields(row, event)
        column = TRANSITIONS[kind][2]
        if row[column] is None or timestamp > row[column]:
            row[column] = timestamp
        if kind != "task-sent":
            final, worker_side, rank, state = _KEY_PARTS[kind]
            key = (final, worker_side, timestamp, rank, state, event.hostname)
            if worker_key is None or key > worker_key:
                worker_key = key
                row["worker"] = event.hostname
            if kind == "task-retried":
                retried += 1
        if fields and isinstance(fields.get("retries"), int):
            row["retries"] = max(row["retries"] or 0, fields["retries"])
        if row["updated_at"] is None or event.local_received > row["updated_at"]:
            row["updated_at"] = event.local_received
    row["retries"] = max(row["retries"] or 0, retried, known_retries)
    row["timestamp"] = _first_seen(row, distinct, had_origin)
    _derive(row)
    return row


_KEY_PARTS = {kind: (state in FINAL_STATES, kind != "task-sent", rank, state)
              for kind, (state, rank, _) in TRANSITIONS.items()}
_KEY_TS, _KEY_STATE = 2, 4
_AT_KEY_PARTS = tuple((column, _KEY_PARTS[kind]) for column, kind in _AT_TO_TYPE.items())


def state_key(kind: str, timestamp: float) -> tuple:
    """Orders states: final beats unfinished; any worker-side event beats task-sent;
    then later beats earlier, then rank, then name.

    task-sent is stamped by the client after it publishes, so on a fast worker it can
    carry a later time than task-started: by time alone a running task would look PENDING.
    Worker-side events of one attempt share a clock, so time orders them, and a retried
    task's next attempt (received/started again) correctly follows its RETRY.
    """
    final, worker_side, rank, state = _KEY_PARTS[kind]
    return (final, worker_side, timestamp, rank, state)


def _worker_key(row: dict[str, Any]) -> tuple | None:
    """The state key of the worker-side event that set `row['worker']`, from the row."""
    if row["worker"] is None:
        return None
    best = None
    for column, kind in _AT_TO_TYPE.items():
        if kind != "task-sent" and row[column] is not None:
            key = state_key(kind, row[column])
            best = key if best is None or key > best else best
    return None if best is None else best + (row["worker"],)


def _apply_fields(row: dict[str, Any], event: Event) -> None:
    """Take the event's descriptive fields where its type is the best source seen so far."""
    fields = event.fields
    latest = row[TRANSITIONS[event.type][2]]
    for name, better_columns in _FIELD_PLAN[event.type]:
        value = fields.get(name)
        if value is None:
            if name != "queue" or (value := _queue_from_routing(fields)) is None:
                continue
        elif name == "parent_id" and value == event.uuid:
            continue  # a retry of a top-level task: see the module docstring
        current = row[name]
        if current is None:
            row[name] = value
        elif better_columns and any(row[column] is not None for column in better_columns):
            continue
        elif latest is None or event.timestamp > latest:
            row[name] = value
        elif event.timestamp == latest and _order(value) > _order(current):
            row[name] = value  # same instant, two values: any fixed choice keeps it stable


def _order(value: Any) -> tuple:
    return (type(value).__name__, value)


def _queue_from_routing(fields: dict[str, Any]) -> str | None:
    """With the default (nameless) exchange a routing key *is* the queue name."""
    if fields.get("routing_key") and not fields.get("exchange"):
        return fields["routing_key"]
    return None


def _first_seen(row: dict[str, Any], events: list[Event], had_origin: bool) -> float:
    """Earliest sent/received time, else earliest time of any event: never None."""
    origin = [e.timestamp for e in events if e.type in _DESCRIBED]
    if origin:
        return min(origin + ([row["timestamp"]] if had_origin else []))
    candidates = [e.timestamp for e in events]
    if row["timestamp"] is not None:
        candidates.append(row["timestamp"])
    return min(candidates)


def _derive(row: dict[str, Any]) -> None:
    """Recompute the columns that follow from the per-transition timestamps."""
    best = None
    for column, (final, worker_side, rank, state) in _AT_KEY_PARTS:
        timestamp = row[column]
        if timestamp is not None:
            key = (final, worker_side, timestamp, rank, state)  # state_key, inlined
            if best is None or key > best:
                best = key
    row["state"], row["state_ts"] = best[_KEY_STATE], best[_KEY_TS]
    started, received = row["started_at"], row["received_at"]
    if started is not None and received is not None and started >= received:
        # An ETA or countdown (every retry has one) is waited out on purpose: the wait
        # for a worker starts when the task was due, not when it was received.
        eta = row["eta"]
        due = received if not isinstance(eta, (int, float)) else min(max(received, eta),
                                                                      started)
        row["queue_wait"] = started - due
    else:
        row["queue_wait"] = None
    failed = row["failed_at"]
    if (row["succeeded_at"] is None and failed is not None and started is not None
            and failed >= started):
        row["runtime"] = failed - started


TIMELINE_COLUMNS = ("task_uuid", "type", "hostname", "timestamp", "local_received", "clock",
                    "info")
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_to_json = _ENCODER.encode  # one encoder: dumps() builds one a call
if c_make_encoder is not None:
    # `JSONEncoder.encode` builds a C encoder on every call, which cost more than the
    # encoding of these small dicts; build it once. Same output: same separators and
    # escaping; no circular-reference check, which flat dicts of checked fields never need.
    _encode_chunks = c_make_encoder(None, _ENCODER.default, encode_basestring_ascii, None,
                                    ":", ",", False, False, True)

    def _to_json(value: dict[str, Any]) -> str:
        return "".join(_encode_chunks(value, 0))


def timeline_values(event: Event) -> tuple:
    """The task_events row for one task event, in `TIMELINE_COLUMNS` order."""
    fields = event.fields
    # task-started carries no fields at all: no dict to build, nothing to encode.
    info = {k: v for k, v in fields.items() if k in _TIMELINE_FIELD_SET} if fields else None
    # Lamport clocks only order events for display; clamp so a huge one fits INTEGER.
    return (event.uuid, event.type, event.hostname, event.timestamp, event.local_received,
            min(event.clock, MAX_CLOCK), _to_json(info) if info else None)


def timeline_row(event: Event) -> dict[str, Any]:
    """The task_events row for one task event; `info` holds its small fields as JSON."""
    return dict(zip(TIMELINE_COLUMNS, timeline_values(event)))
