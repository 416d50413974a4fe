"""Writing task events inside one open transaction: timeline rows, then merged task rows.

The timeline insert decides what is new: `ON CONFLICT DO NOTHING ... RETURNING` on the
event identity tells exactly which events were not already stored, even when another
collector writes the same events at the same time, so nothing downstream (task rows,
rollups, counters) ever sees a duplicate.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from itertools import chain
from operator import attrgetter
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

from sqlalchemy import Connection, Table, func, select

from lookout.collectors import merge
from lookout.collectors.events import Event
from lookout.collectors.sql_rows import chunks, select_in, write_rows
from lookout.core.store.models import Task, TaskEvent

TASKS: Table = Task.__table__
TASK_EVENTS: Table = TaskEvent.__table__
_IDENTITY = ("task_uuid", "type", "timestamp", "hostname")
_identity_of = attrgetter("uuid", "type", "timestamp", "hostname")  # merge.identity, in C


def tune_connection(conn: Connection) -> None:
    """Turn off psycopg's automatic server-side prepares for the writer's connection.

    A prepared `uuid IN (...)` gets a generic plan after five runs; planned while a fresh
    table had no statistics, that plan is a sequential scan, and loading a batch's tasks
    went from 2 s to 50 s over 150k events (measured). Custom plans use the index.
    """
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        if getattr(driver, "prepare_threshold", None) is not None:
            driver.prepare_threshold = None


# pg_advisory_xact_lock key of the merge phase ("look" in ASCII); advisory locks are per
# database, so stores sharing a PostgreSQL server do not wait for each other.
MERGE_LOCK = 0x6C6F6F6B


def serialize_merges(conn: Connection) -> None:
    """Let one transaction at a time merge into task, worker and rollup rows (PostgreSQL).

    The merges read rows, fold events into them in Python and write them back; two
    collectors doing that to one row at once would lose one's update. Taken after the
    timeline insert, so deduplication (the bulk of the work) still runs side by side;
    held until commit, and READ COMMITTED lets each statement after it see what the
    previous holder committed. SQLite allows one writer at a time anyway.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MERGE_LOCK})")


def unique_events(events: Iterable[Event]) -> tuple[list[Event], int]:
    """Task events without in-batch copies (first copy kept) and how many were dropped.

    Most batches hold no copy: that is checked with the keys made in C first.
    """
    events = list(events)
    if len(set(map(_identity_of, events))) == len(events):
        return events, 0
    seen: set[tuple] = set()
    kept: list[Event] = []
    copies = 0
    for event in events:
        key = (event.uuid, event.type, event.timestamp, event.hostname)  # merge.identity
        if key in seen:
            copies += 1
        else:
            seen.add(key)
            kept.append(event)
    return kept, copies


_INSERT = f"INSERT INTO task_events ({', '.join(merge.TIMELINE_COLUMNS)}) "
_ON_CONFLICT = (f" ON CONFLICT ({', '.join(_IDENTITY)}) DO NOTHING"
                f" RETURNING {', '.join(_IDENTITY)}")
# PostgreSQL: one statement over arrays instead of thousands of VALUES tuples, which
# psycopg would otherwise parse client-side for every page (ten times slower measured).
# Binary parameters (%b): psycopg's text array format escapes every element by regex.
_PG_TIMELINE = (_INSERT + "SELECT * FROM unnest(%b::varchar[], %b::varchar[], %b::varchar[],"
                " %b::float8[], %b::float8[], %b::int[], %b::text[])" + _ON_CONFLICT)
SQLITE_ROWS_PER_INSERT = 4000  # x 7 columns stays under SQLite's 32766 variables


def _statement_sizes(count: int) -> Iterator[int]:
    """Rows per VALUES statement for `count` rows: full statements, then powers of two.

    Python's sqlite3 keeps up to 128 prepared statements per connection, one per distinct
    SQL text, and a prepared 3,000-row VALUES statement holds about 2.5 MB. With one
    statement per batch remainder, every new remainder size added another: the collector
    grew by tens of MB per 150k events (measured). This way at most 13 texts exist.
    """
    while count >= SQLITE_ROWS_PER_INSERT:
        yield SQLITE_ROWS_PER_INSERT
        count -= SQLITE_ROWS_PER_INSERT
    size = 1 << (SQLITE_ROWS_PER_INSERT.bit_length() - 1)
    while count:
        if count >= size:
            yield size
            count -= size
        size >>= 1


@functools.lru_cache(maxsize=None)  # at most 13 sizes: see _statement_sizes
def _sqlite_timeline(rows: int) -> str:
    return _INSERT + "VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * rows) + _ON_CONFLICT


def insert_timeline(conn: Connection, events: list[Event]) -> list[Event]:
    """Insert timeline rows; return the events that were not stored before.

    Multi-row VALUES with RETURNING straight to the driver: RETURNING rules out the
    driver's executemany, and SQLAlchemy's generic path cost more than the insert.
    """
    if not events:
        return []
    # Sorted by key: concurrent writers then lock index entries in one order (no deadlock).
    rows = sorted(merge.timeline_values(e) for e in events)
    inserted: set[tuple] = set()
    if conn.dialect.name == "postgresql":
        columns = tuple(list(column) for column in zip(*rows))
        inserted.update(map(tuple, conn.exec_driver_sql(_PG_TIMELINE, columns).fetchall()))
    else:
        start = 0
        for size in _statement_sizes(len(rows)):
            params = tuple(chain.from_iterable(rows[start:start + size]))
            start += size
            result = conn.exec_driver_sql(_sqlite_timeline(size), params)
            inserted.update(map(tuple, result.fetchall()))
    if len(inserted) == len(events):
        return list(events)  # every one new (the usual case); copies would make it fewer
    return [e for e in events if merge.identity(e) in inserted]


def load_tasks(conn: Connection, uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {row["uuid"]: row for row in select_in(conn, TASKS, TASKS.c.uuid, uuids)}


def _stored_retries(conn: Connection, uuids: Sequence[str]) -> dict[str, int]:
    """Distinct task-retried events stored per task (this batch's included)."""
    counts: dict[str, int] = {}
    for chunk in chunks(uuids):
        query = (select(TASK_EVENTS.c.task_uuid, func.count())
                 .where(TASK_EVENTS.c.type == "task-retried",
                        TASK_EVENTS.c.task_uuid.in_(chunk))
                 .group_by(TASK_EVENTS.c.task_uuid))
        counts.update({uuid: count for uuid, count in conn.execute(query)})
    return counts


class SavedTasks(NamedTuple):
    """What one batch did to the task rows, for the counters written after them."""
    merged: dict[str, dict[str, Any]]  # uuid -> the row as written, every task of the batch
    changed: list[dict[str, Any]]  # rows inserted or changed
    named_late: dict[str, str]  # uuid -> name, for stored tasks that had none until now
    before: dict[str, dict[str, Any]]  # uuid -> the stored row the events merged into


def save_tasks(conn: Connection, new_events: list[Event]) -> SavedTasks:
    """Merge new events into their task rows and write them."""
    by_task: dict[str, list[Event]] = defaultdict(list)
    for event in new_events:
        by_task[event.uuid].append(event)
    uuids = sorted(by_task)  # one lock order for every writer
    existing = load_tasks(conn, uuids)
    retried_before = [u for u in uuids if u in existing
                      and any(e.type == "task-retried" for e in by_task[u])]
    retries = _stored_retries(conn, retried_before) if retried_before else {}
    inserts: list[dict[str, Any]] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    merged: dict[str, dict[str, Any]] = {}
    named_late: dict[str, str] = {}
    for uuid in uuids:
        events, old = by_task[uuid], existing.get(uuid)
        row = merged[uuid] = merge.fold(old, events, retries.get(uuid, 0))
        if old is None:
            inserts.append(row)
        elif row != old:
            updates[tuple([c for c in merge.TASK_COLUMNS if row[c] != old[c]])].append(row)
            if old["name"] is None and row["name"]:
                named_late[uuid] = row["name"]
    write_rows(conn, TASKS, ("uuid",), inserts, [])
    for columns, rows in updates.items():
        # Only the changed columns: SQLite rewrites the index entries (and runs the text
        # index's trigger) of every column an UPDATE sets, changed or not.
        write_rows(conn, TASKS, ("uuid",), [], rows, columns)
    changed = inserts + [r for rows in updates.values() for r in rows]
    return SavedTasks(merged, changed, named_late, existing)
