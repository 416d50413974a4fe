"""Per task name and minute counters, accumulated in memory per batch, then merged in SQL.

Only events the timeline insert reported as new are counted, so a duplicate never counts
twice. Events are counted under the task name known once the batch is merged (from this
batch or the stored row). A task whose received/sent event has not arrived yet is counted
under the name "" until its name arrives; then `reattribute` moves those counts to the
name, so per-name stats and charts never show a nameless row for long.

Final transitions (succeeded, failed, revoked, rejected) count tasks, not events: Celery
can send one twice (a hard time limit sends task-failed from the pool, then again from
the request's on_timeout), and "2 failed" for one task would be wrong. Each is counted
once per task, in the minute of the row's `*_at` (the latest event of that type) and
under the row's name; `count_final_states` moves the count when either changes, so the
rollups depend on the set of events only, not on their order or batch split.
"""
from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import Connection, Table, delete, tuple_

from lookout.core import histogram
from lookout.collectors.events import Event
from lookout.collectors.merge import FINAL_AT
from lookout.collectors.sql_rows import chunks, select_in, write_rows
from lookout.core.store.models import TaskEvent, TaskRollup

ROLLUPS: Table = TaskRollup.__table__
EVENTS: Table = TaskEvent.__table__
BUCKET_SECONDS = 60
COUNTED = {
    "task-received": "received", "task-started": "started", "task-succeeded": "succeeded",
    "task-failed": "failed", "task-retried": "retried", "task-revoked": "revoked",
    "task-rejected": "rejected",
}
_COUNTERS = tuple(COUNTED.values()) + ("runtime_count",)
# Final event type -> (rollup column, task row column of its latest time).
FINAL_COUNTED = {kind: (COUNTED[kind], at) for kind, at in FINAL_AT.items()}
_FINAL_COLUMNS = tuple(FINAL_COUNTED.values())


def bucket_of(timestamp: float) -> int:
    """Start of the epoch minute holding `timestamp`."""
    return int(timestamp // BUCKET_SECONDS) * BUCKET_SECONDS


def accumulate(events: Iterable[Event], names: dict[str, str | None]
               ) -> dict[tuple[str, int], dict[str, Any]]:
    """Counters per (task name, minute) for new task events that are not final; `names`
    maps uuid -> name. Final transitions are counted per task by `count_final_states`."""
    acc: dict[tuple[str, int], dict[str, Any]] = {}
    for event in events:
        column = COUNTED.get(event.type)
        if column is None or event.type in FINAL_COUNTED:
            continue
        # `_count(..., sign=1)` inlined: this runs for every new event of a batch.
        key = (names.get(event.uuid) or "", bucket_of(event.timestamp))
        entry = acc.get(key)
        if entry is None:
            entry = acc[key] = _new_entry()
        entry[column] += 1
    return acc


def count_final_states(acc: dict, before: dict[str, dict[str, Any]],
                       after: dict[str, dict[str, Any]]) -> None:
    """Count each task's final transitions once: under its name, in the minute of the
    latest event of that type. `before` are the stored rows, `after` the merged ones.

    A task counted before is moved (-1 where it was, +1 where it is now) when a later
    event of that type or its name arrived; the runtime statistics move with its success.
    """
    for uuid, row in after.items():
        old = before.get(uuid)
        name = row["name"] or ""
        for column, at in _FINAL_COLUMNS:
            latest = row[at]
            if latest is None:
                continue
            if old is not None and old[at] is not None:
                old_name = old["name"] or ""
                if old[at] == latest and old_name == name:
                    continue
                _count(acc, old_name, old[at], column, old["runtime"], -1)
            _count(acc, name, latest, column, row["runtime"], 1)


def _new_entry() -> dict[str, Any]:
    entry: dict[str, Any] = dict.fromkeys(_COUNTERS, 0)
    entry.update(runtime_sum=0.0, hist={})
    return entry


def _count(acc: dict, name: str, timestamp: float, column: str, runtime: float | None,
           sign: int) -> None:
    key = (name, bucket_of(timestamp))
    entry = acc.get(key)
    if entry is None:
        entry = acc[key] = _new_entry()
    entry[column] += sign
    if column == "succeeded" and runtime is not None:
        entry["runtime_count"] += sign
        entry["runtime_sum"] += sign * runtime
        index = histogram.bucket_of(runtime)
        entry["hist"][index] = entry["hist"].get(index, 0) + sign


def reattribute(conn: Connection, acc: dict, named_late: dict[str, str],
                batch: Iterable[Event]) -> None:
    """Move the counts of stored events filed under "" to their task's newly known name.

    Only events stored before this batch were counted under ""; this batch's own events
    are already counted under the name by `accumulate`. Final transitions are not events
    here: `count_final_states` moves them.
    """
    fresh = {(e.uuid, e.type, e.timestamp, e.hostname) for e in batch}
    for row in select_in(conn, EVENTS, EVENTS.c.task_uuid, sorted(named_late)):
        column = COUNTED.get(row["type"])
        uuid = row["task_uuid"]
        if column is None or row["type"] in FINAL_COUNTED or \
                (uuid, row["type"], row["timestamp"], row["hostname"]) in fresh:
            continue
        _count(acc, "", row["timestamp"], column, None, -1)
        _count(acc, named_late[uuid], row["timestamp"], column, None, 1)


def save_rollups(conn: Connection, acc: dict[tuple[str, int], dict[str, Any]]) -> None:
    """Add the batch's counters to stored rollups (insert the missing minutes)."""
    if not acc:
        return
    existing: dict[tuple[str, int], dict[str, Any]] = {}
    names = sorted({name for name, _ in acc})
    for bucket_chunk in chunks(sorted({bucket for _, bucket in acc})):
        for row in select_in(conn, ROLLUPS, ROLLUPS.c.name, names,
                             ROLLUPS.c.bucket.in_(bucket_chunk)):
            existing[(row["name"], row["bucket"])] = row
    inserts, updates = [], []
    for (name, bucket), entry in sorted(acc.items()):  # one lock order for every writer
        row = existing.get((name, bucket))
        if row is None:
            row = {"name": name, "bucket": bucket, "runtime_sum": 0.0,
                   **{c: 0 for c in _COUNTERS}}
            target = inserts
        else:
            target = updates
        for column in _COUNTERS:
            row[column] = (row[column] or 0) + entry[column]
        row["runtime_sum"] = (row["runtime_sum"] or 0.0) + entry["runtime_sum"]
        hist = histogram.merge(histogram.loads(row.get("runtime_hist")), entry["hist"])
        row["runtime_hist"] = histogram.dumps(hist) if any(hist.values()) else None
        target.append(row)
    emptied = [(r["name"], r["bucket"]) for r in updates
               if not any(r[c] for c in _COUNTERS)]
    updates = [r for r in updates if any(r[c] for c in _COUNTERS)]
    write_rows(conn, ROLLUPS, ("name", "bucket"), inserts, updates)
    for chunk in chunks(emptied):  # "" minutes whose counts all moved to a name
        conn.execute(delete(ROLLUPS).where(
            tuple_(ROLLUPS.c.name, ROLLUPS.c.bucket).in_(chunk)))
