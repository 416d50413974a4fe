"""Flower's response shapes: a task as Flower's event state has it, and control messages.

A Flower task is Celery's `events.state.Task.as_dict()` with the worker's hostname: one
epoch timestamp per event type, `timestamp` the time of the event that set the state,
`clock` that event's Lamport clock, `client` the host that sent the task, `root` and
`parent` the ids again, `children` the ids of tasks sent with this one as parent. Lookout
keeps all of it in its tasks row and timeline; this module only renames, and writes eta
and expires back as the ISO 8601 text the events carried (Lookout keeps epoch seconds).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterable

from lookout.collectors.merge import TRANSITIONS, state_key

# Celery's Task._fields, in its order (Flower's task lists move "worker" to the end).
TASK_FIELDS = (
    "uuid", "name", "state", "received", "sent", "started", "rejected", "succeeded",
    "failed", "retried", "revoked", "args", "kwargs", "eta", "expires", "retries", "worker",
    "result", "exception", "timestamp", "runtime", "traceback", "exchange", "routing_key",
    "clock", "client", "root", "root_id", "parent", "parent_id", "children",
)
# Flower field -> tasks column, where the names differ.
COLUMNS = {"received": "received_at", "sent": "sent_at", "started": "started_at",
           "rejected": "rejected_at", "succeeded": "succeeded_at", "failed": "failed_at",
           "retried": "retried_at", "revoked": "revoked_at", "timestamp": "state_ts",
           "root": "root_id", "parent": "parent_id"}


def flower_task(row: dict, clock: int | None, client: str | None,
                children: Iterable[str]) -> dict[str, Any]:
    """One task in Flower's shape from a tasks row and what its timeline adds.

    Lookout derives a failed task's runtime from its start and failure times; Flower's
    runtime is only what task-succeeded reports, so it is kept for successes only.
    """
    extra = {"clock": clock or 0, "client": client, "children": list(children),
             "runtime": row.get("runtime") if row.get("succeeded_at") is not None else None,
             "eta": iso_time(row.get("eta")), "expires": iso_time(row.get("expires"))}
    return {name: extra[name] if name in extra else row.get(COLUMNS.get(name, name))
            for name in TASK_FIELDS}


def iso_time(epoch: float | None) -> str | None:
    """Epoch seconds as Celery writes an aware datetime: `datetime.isoformat()`. In UTC:
    the events' text had the sender's offset (UTC unless the app has another timezone),
    which is not kept; the instant is the same."""
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def timeline_facts(events: Iterable[dict]) -> tuple[int | None, str | None]:
    """(clock, client) from a task's events: the clock of the event that set the task's
    state (the collector's own choice, `merge.state_key`), the sender's host.

    Not simply the latest event: a client stamps task-sent after it publishes, so on a
    fast worker task-sent can carry a later time than task-started; the state (and
    `timestamp`) are then task-started's, and so is the clock.
    """
    best, best_key, client = None, None, None
    for event in events:
        kind = event["type"]
        if kind == "task-sent":
            client = event["hostname"]
        if kind not in TRANSITIONS:
            continue
        key = (*state_key(kind, event["timestamp"]), event["clock"])
        if best_key is None or key >= best_key:
            best, best_key = event, key
    return (best["clock"] if best else None), client


def safe_result(value: Any) -> Any:
    """A result as JSON can carry it, else its repr (what Flower answers)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


# Control command -> (Flower's message when the worker says ok, its message otherwise).
# "{ok}" is the worker's own reply text, "{reason}" its error; the rest are arguments.
MESSAGES = {
    "shutdown": ("Shutting down!", None),
    "pool_restart": ("Restarting '{worker}' worker's pool",
                     "Failed to restart the '{worker}' pool: {reason}"),
    "pool_grow": ("Growing '{worker}' worker's pool by {n}",
                  "Failed to grow '{worker}' worker's pool: {reason}"),
    "pool_shrink": ("Shrinking '{worker}' worker's pool by {n}",
                    "Failed to shrink '{worker}' worker's pool: {reason}"),
    "autoscale": ("Autoscaling '{worker}' worker (min={min}, max={max})",
                  "Failed to autoscale '{worker}' worker: {reason}"),
    "add_consumer": ("{ok}", "Failed to add '{queue}' consumer to '{worker}' worker: {reason}"),
    "cancel_consumer": ("{ok}",
                        "Failed to cancel '{queue}' consumer from '{worker}' worker: {reason}"),
    "rate_limit": ("{ok}", "Failed to set rate limit: '{reason}'"),
    "time_limit": ("{ok}", "Failed to set timeouts: '{reason}'"),
}


def control_message(command: str, worker: str, arguments: dict,
                    replies: list[dict]) -> tuple[bool, str]:
    """(ok, Flower's message) for one worker's reply to a command; Flower answers a
    refusal with 403 and that message.

    `replies` are ControlService's normalised replies ({worker, ok, reply, error?}).
    Shutdown is announced whatever the reply: a worker going down may not answer.
    """
    done, failed = MESSAGES[command]
    if failed is None:
        return True, done
    mine = next((r for r in replies if r["worker"] == worker), {})
    reply = mine.get("reply")
    if mine.get("ok") and isinstance(reply, dict) and "ok" in reply:
        return True, done.format(worker=worker, ok=reply["ok"], **arguments)
    reason = reply.get("error") if isinstance(reply, dict) else None
    reason = reason or mine.get("error") or "Unknown reason"
    return False, failed.format(worker=worker, reason=reason, **arguments)
