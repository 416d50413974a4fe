"""Per task name and minute counters, accumulated in memory per batch, then merged in SQL.

Only events the timeline insert reported as new are counted, so a duplicate never counts
twice. Events are counted under the task name known once the batch is merged (from this
batch or the stored row); a task whose received/sent event has not arrived yet is counted
under the name "" and is not moved later: rollups are aggregates, not rewritten history.
"""
from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import Connection, Table

from collectors import histogram
from collectors.events import Event
from collectors.sql_rows import chunks, select_in, write_rows
from collectors.store.models import TaskRollup

ROLLUPS: Table = TaskRollup.__table__
BUCKET_SECONDS = 60
COUNTED = {
    "task-received": "received", "task-started": "started", "task-succeeded": "succeeded",
    "task-failed": "failed", "task-retried": "retried", "task-revoked": "revoked",
    "task-rejected": "rejected",
}
_COUNTERS = tuple(COUNTED.values()) + ("runtime_count",)


def bucket_of(timestamp: float) -> int:
    """Start of the epoch minute holding `timestamp`."""
    return int(timestamp // BUCKET_SECONDS) * BUCKET_SECONDS


def accumulate(events: Iterable[Event], names: dict[str, str | None]
               ) -> dict[tuple[str, int], dict[str, Any]]:
    """Counters per (task name, minute) for new task events; `names` maps uuid -> name."""
    acc: dict[tuple[str, int], dict[str, Any]] = {}
    for event in events:
        column = COUNTED.get(event.type)
        if column is None:
            continue
        key = (names.get(event.uuid) or "", bucket_of(event.timestamp))
        entry = acc.get(key)
        if entry is None:
            entry = acc[key] = {c: 0 for c in _COUNTERS}
            entry.update(runtime_sum=0.0, hist={})
        entry[column] += 1
        runtime = event.fields.get("runtime")
        if column == "succeeded" and runtime is not None:
            entry["runtime_count"] += 1
            entry["runtime_sum"] += runtime
            histogram.add(entry["hist"], runtime)
    return acc


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
        row["runtime_hist"] = histogram.dumps(hist) if hist else None
        target.append(row)
    write_rows(conn, ROLLUPS, ("name", "bucket"), inserts, updates)
