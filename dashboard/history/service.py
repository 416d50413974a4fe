"""Read side of the history store: task lists, task details and workflow trees, as plain dicts.

Every list is keyset-paginated on (sort column, uuid) so page 10,000 costs what page 1
does, and each filter maps onto one of the tasks indexes. Totals are counted up to
COUNT_LIMIT matches and no further: an exact count of 800,000 rows cost 76-108 ms cold,
a number nobody reads to the unit, while "10,000+" costs what a count of 10,000 does.
Counts are cached per filter set for a time that grows with their cost (cost_cache.py).
"""
from __future__ import annotations

import dataclasses
import functools

import json
import time
from dataclasses import dataclass

from sqlalchemy import Engine, and_, func, literal, select

from lookout.core.store.models import RevokeRequest, Task, TaskEvent, TaskLink
from lookout.core.trouble import OPEN_STATES, listening_since, lost_fields, workers_by_name
from lookout.dashboard.history.query import TaskFilters, TaskQuery, encode_cursor
from lookout.dashboard.history.rollups import RollupStats
from lookout.dashboard.history.workflow import WORKFLOW_LIMIT, workflow_members, workflow_tree
from lookout.dashboard.history.task_sql import (
    LIST_TEXT,
    LIST_TEXT_FIELDS,
    SORT_MATCHES_MAX,
    after,
    conditions,
    failures_by_runtime,
    likely,
    list_columns,
    plan,
)
from lookout.dashboard.history.text_search import (
    MIN_INDEXED,
    fts_candidates,
    fts_count,
    fts_hits,
    fts_members,
    has_index,
    like,
    matching_names,
)
from lookout.dashboard.web.cost_cache import CostCache
from lookout.dashboard.web.errors import ApiError

NOT_STARTED = frozenset({"PENDING", "RECEIVED", "RETRY"})  # what a revoke still stops
tasks = Task.__table__
events = TaskEvent.__table__
links = TaskLink.__table__
revokes = RevokeRequest.__table__

COUNT_LIMIT = 10_000  # totals are exact up to this many matches; beyond, a lower bound
# SQLite: fields holding a `q` up to which its hits filter as a set (`_search`); building
# the set of 50,000 takes a few ms, counting hits that far about 2.5 (1M tasks).
FTS_SET_MAX = 50_000


@dataclass
class TaskPage:
    items: list[dict]
    total: int  # at most COUNT_LIMIT: a lower bound when not `total_exact`
    next_cursor: str | None
    total_exact: bool = True


class HistoryService:
    """Queries for the API and pages; one per app, safe to share between threads."""

    def __init__(self, engine: Engine, clock=time.time, lost_after: float = 60.0):
        self.engine = engine
        self.clock = clock
        self.lost_after = lost_after
        self.sort_matches_max = SORT_MATCHES_MAX
        # Totals and worker counts, by filter set: kept for 200x their cost.
        self.counts = CostCache()
        self.rollups = RollupStats(engine, clock)
        self.text_index: bool | None = None  # whether migration 0011 built it; asked once

    # -- tasks ---------------------------------------------------------------------
    def list_tasks(self, query: TaskQuery) -> TaskPage:
        dialect = self.engine.dialect.name
        if query.filters.lost and query.filters.lost_at is None:
            # Judged now; the time also keys the cached total, so it is never stale.
            query = dataclasses.replace(query, filters=dataclasses.replace(
                query.filters, lost_at=self.clock()))
        filters = query.filters
        alone = filters == TaskFilters(q=filters.q)
        with self.engine.connect() as conn:
            search, search_max, count_alone = self._search(conn, filters.q, alone)
            names = () if filters.name_pattern is None else self.counts.get_or_compute(
                ("names", filters.name_pattern),
                lambda: matching_names(conn, filters.name_pattern))
            where = conditions(filters, dialect, lost_after=self.lost_after, search=search,
                               names=names)
            counted = self._count(conn, filters, where, COUNT_LIMIT,
                                  count_alone if alone else None)

            def matches(most: int) -> int:
                if counted <= COUNT_LIMIT or most <= COUNT_LIMIT:
                    return counted
                return self._count(conn, filters, where, most)

            column, walk = plan(query, matches, self.sort_matches_max, search_max)
            page_where = conditions(filters, dialect, indexed=False, lost_after=self.lost_after,
                                    names=names) if walk else where
            rows = self._page_rows(conn, page_where, query, column)
            items = self._items(conn, rows[:query.limit])
        next_cursor = None
        if len(rows) > query.limit:
            last = rows[query.limit - 1]
            next_cursor = encode_cursor(query.sort, last[query.sort.column], last["uuid"],
                                        query.params)
        return TaskPage(items, min(counted, COUNT_LIMIT), next_cursor,
                        total_exact=counted <= COUNT_LIMIT)

    def _items(self, conn, rows: list[dict]) -> list[dict]:
        """List items of `rows`, each with `lost` judged now from its worker's row and
        whether Lookout asked for its revoke."""
        workers = workers_by_name(conn, [r["worker"] for r in rows
                                         if r["state"] in OPEN_STATES])
        requested = revoke_requests(conn, [r["uuid"] for r in rows])
        now = self.clock()
        listening = listening_since(conn, now)
        items = []
        for row in rows:
            item = list_item(row)
            item.update(lost_fields(row, workers.get(row["worker"]), now, self.lost_after,
                                    listening=listening))
            add_revoke_request(item, requested.get(row["uuid"]))
            items.append(item)
        return items

    def get_task(self, uuid: str) -> dict:
        """Every column, the event timeline, children and retry history; 404 if unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(select(tasks).where(tasks.c.uuid == uuid)).mappings().first()
            if row is None:
                raise ApiError(404, f"no task with id {uuid[:100]!r}")
            timeline = conn.execute(
                select(events).where(events.c.task_uuid == uuid)
                .order_by(events.c.timestamp, events.c.id)).mappings().all()
            children = conn.execute(
                select(*list_columns()).where(tasks.c.parent_id == uuid)
                .order_by(tasks.c.timestamp, tasks.c.uuid).limit(1000)).mappings().all()
            retry_of = conn.execute(select(links.c.retry_of)
                                    .where(links.c.task_uuid == uuid)).scalar()
            retried_as = conn.execute(
                select(links.c.task_uuid, links.c.created_by, links.c.created_at)
                .where(links.c.retry_of == uuid).order_by(links.c.created_at)
                .limit(100)).mappings().all()
            worker = workers_by_name(conn, [row["worker"]]).get(row["worker"])
            requested = revoke_requests(conn, [uuid]).get(uuid)
            now = self.clock()
            listening = listening_since(conn, now)
        task = dict(row)
        task.update(lost_fields(task, worker, now, self.lost_after, listening=listening))
        add_revoke_request(task, requested)
        # Retries sent by Lookout (control/retry.py): the events cannot carry the link.
        task["retry_of"] = retry_of
        task["retried_as"] = [dict(r) for r in retried_as]
        task["timeline"] = _timeline(timeline)
        task["children"] = [list_item(child) for child in children]
        task["retry_history"] = [
            {"timestamp": e["timestamp"], "hostname": e["hostname"],
             "exception": (e["info"] or {}).get("exception"),
             "traceback": (e["info"] or {}).get("traceback")}
            for e in task["timeline"] if e["type"] == "task-retried"]
        return task

    def workflow(self, root_id: str, limit: int = WORKFLOW_LIMIT) -> dict:
        """Every task of the workflow `root_id` as one tree (workflow.py); 404 if unknown."""
        with self.engine.connect() as conn:
            rows, total, retry_of = workflow_members(conn, root_id, limit)
            if not rows:
                raise ApiError(404, f"no workflow with root id {root_id[:100]!r}")
            items = self._items(conn, rows)
        tree, states = workflow_tree(root_id, items, retry_of)
        root_row = next((item for item in items if item["uuid"] == root_id), None)
        belongs_to = root_row["root_id"] if root_row and root_row["root_id"] not in (
            None, root_id) else None
        return {"root_id": root_id, "total": max(total, len(items)),
                "truncated": len(items) < total, "belongs_to": belongs_to, "states": states,
                "tasks": items, "tree": tree}

    def _page_rows(self, conn, where: list, query: TaskQuery, column) -> list[dict]:
        """One page plus one row (to know whether there is a next page).

        Nullable sort columns are walked as two segments, non-null values first and then
        the NULL rows by uuid, in both directions: each segment is a plain index range, and
        the cursor's value being null says which segment it points into. `column` is the
        sort column or an equal expression that keeps it away from its index (`plan`).
        """
        sort, cursor, want = query.sort, query.cursor, query.limit + 1
        failures = failures_by_runtime(query)  # read from their partial index: see there
        rows: list = []
        if cursor is None or cursor.value is not None:
            segment = [likely(condition, conn.dialect.name) for condition in where] \
                if failures else list(where)
            if sort.nullable:
                segment.append(column.is_not(None))
            if cursor is not None:
                segment.append(after(column, cursor, sort.descending))
            order = (column.desc(), tasks.c.uuid.desc()) if sort.descending \
                else (column.asc(), tasks.c.uuid.asc())
            rows = _fetch(conn, segment, order, want)
        if sort.nullable and len(rows) < want:
            segment = [*where, (column + 0 if failures else column).is_(None)]
            if cursor is not None and cursor.value is None:
                segment.append(tasks.c.uuid < cursor.uuid if sort.descending
                               else tasks.c.uuid > cursor.uuid)
            uuid_order = tasks.c.uuid.desc() if sort.descending else tasks.c.uuid.asc()
            rows = rows + _fetch(conn, segment, (uuid_order,), want - len(rows))
        return rows

    def _search(self, conn, q: str | None, alone: bool) -> tuple:
        """For `q`: the condition (None: the plain `like`), how many matches its index
        finds at most (0: no index serves it; see `plan`), and a count of `q` alone that
        is cheaper than counting the condition (or None).

        SQLite asks the FTS5 table first how many fields hold `q`: up to COUNT_LIMIT, the
        candidates are fetched by rowid; more, and walking an index while testing rows finds
        a page sooner (1% of all rows or more match), testing them against the set of hits
        while it holds at most FTS_SET_MAX (fts_members), by LIKE alone beyond. A `q` with
        no other filter has no other index to walk: no set then (`alone`). PostgreSQL's
        planner makes that choice for ILIKE and its GIN index itself.
        """
        if not q or len(q) < MIN_INDEXED:
            return None, 0, None
        if self.text_index is None:
            self.text_index = has_index(conn)
        if not self.text_index:
            return None, 0, None
        if conn.dialect.name != "sqlite":
            return None, COUNT_LIMIT, None
        most = COUNT_LIMIT if alone else FTS_SET_MAX
        hits = self.counts.get_or_compute(("fts", q, most), lambda: fts_hits(conn, q, most))
        count_alone = functools.partial(fts_count, q)
        if hits > most:
            return None, 0, count_alone
        if hits > COUNT_LIMIT:
            return and_(fts_members(q), like(q, "sqlite")), 0, count_alone
        return and_(fts_candidates(q), like(q, "sqlite")), COUNT_LIMIT, None

    def _count(self, conn, filters: TaskFilters, where: list, most: int, count=None) -> int:
        """Rows matching `filters`, counted up to `most` + 1 ("more than `most`") and no
        further, cached per filter set. `count(most)` is a cheaper statement, if any."""
        if count is None:
            upto = select(literal(1)).select_from(tasks).where(*where).limit(most + 1)
            statement = select(func.count()).select_from(upto.subquery())
        else:
            statement = count(most)
        return self.counts.get_or_compute((filters, most),
                                          lambda: conn.execute(statement).scalar_one())


def _fetch(conn, where: list, order: tuple, limit: int) -> list[dict]:
    """Rows in order, found by uuid first: the database then sorts narrow (key, uuid)
    tuples rather than whole rows, 3x faster when thousands of matches must be sorted."""
    page = select(tasks.c.uuid).where(*where).order_by(*order).limit(limit)
    stmt = select(*list_columns()).where(tasks.c.uuid.in_(page)).order_by(*order)
    return [dict(row) for row in conn.execute(stmt).mappings()]


def revoke_requests(conn, uuids: list[str]) -> dict[str, float]:
    """When Lookout last sent a revoke of each of `uuids` (control/service.py)."""
    if not uuids:
        return {}
    return dict(conn.execute(select(revokes.c.task_uuid, revokes.c.requested_at)
                             .where(revokes.c.task_uuid.in_(uuids))).all())


def add_revoke_request(item: dict, requested_at: float | None) -> None:
    """`revoke_pending`: asked, and the task has not started. A worker holding an ETA
    task announces the revoke only when the ETA comes: till then the task is RECEIVED.
    A running task is never pending: a plain revoke does not stop it (it runs to its
    end), and a terminate's task-revoked follows at once."""
    item["revoke_requested_at"] = requested_at
    item["revoke_pending"] = requested_at is not None and item["state"] in NOT_STARTED


def list_item(row) -> dict:
    item = dict(row)
    truncated = []
    for name in LIST_TEXT_FIELDS:
        value = item.get(name)
        if value is not None and len(value) > LIST_TEXT:
            item[name] = value[:LIST_TEXT]
            truncated.append(name)
    item["truncated"] = truncated
    return item


def _timeline(rows) -> list[dict]:
    timeline, previous = [], None
    for row in rows:
        entry = dict(row)
        entry.pop("task_uuid", None)
        entry["info"] = _parse_info(row["info"])
        entry["gap"] = None if previous is None else round(row["timestamp"] - previous, 6)
        previous = row["timestamp"]
        timeline.append(entry)
    return timeline


def _parse_info(text: str | None) -> dict:
    """Event fields as a dict; anything unreadable is kept under "raw" rather than lost."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"raw": value}
