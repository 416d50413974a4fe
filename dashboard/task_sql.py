"""SQL for the task list: filter conditions, text search, sort plans and keyset bounds.

Kept apart from the service so the query shapes that the benchmarks depend on can be read
(and reviewed against the indexes in collectors/store/models.py) in one place.
"""
from __future__ import annotations

from sqlalchemy import and_, func, or_

from collectors.store.models import Task
from dashboard.query import Cursor, TaskFilters, TaskQuery

tasks = Task.__table__

LIST_TEXT = 200  # chars of args/kwargs/result/exception in list items
LIST_TEXT_FIELDS = ("args", "kwargs", "result", "exception")
SEARCH_FIELDS = ("args", "kwargs", "result", "exception")
# Up to this many matching rows, a non-default sort sorts them instead of walking an index.
SORT_MATCHES_MAX = 100_000


def conditions(filters: TaskFilters, dialect: str, indexed: bool = True) -> list:
    """SQL conditions for the filters; all values are bound parameters.

    `indexed=False` writes equalities as `col || '' = :v` so that no index serves them.
    """
    def col(name: str):
        return tasks.c[name] if indexed else tasks.c[name] + ""

    where = []
    if filters.states:
        where.append(col("state").in_(filters.states))
    for name in ("name", "worker", "queue", "root_id", "parent_id"):
        value = getattr(filters, name)
        if value is not None:
            where.append(col(name) == value)
    for column, low, high in filters.ranges:
        if low is not None:
            where.append(tasks.c[column] >= low)
        if high is not None:
            where.append(tasks.c[column] <= high)
    if filters.q:
        where.append(search(filters.q, dialect))
    return where


def search(q: str, dialect: str):
    """Substring match, case-insensitive, with % and _ in `q` taken literally.

    SQLite's LIKE already ignores ASCII case (and its lower() knows no more than ASCII),
    so plain LIKE there avoids lower() copies of four text columns per row: 2x faster.
    """
    pattern = "%" + q.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
    if dialect == "sqlite":
        return or_(*(tasks.c[f].like(pattern, escape="/") for f in SEARCH_FIELDS))
    return or_(*(tasks.c[f].ilike(pattern, escape="/") for f in SEARCH_FIELDS))


def plan(query: TaskQuery, total: int, sort_matches_max: int = SORT_MATCHES_MAX):
    """For a non-default sort with filters: the sort expression and whether to walk it.

    The database must either walk the sort column's index, filtering as it goes, or find
    the matching rows by a filter index and sort them. Planners guess wrong both ways
    (SQLite has no histograms; PostgreSQL assumes columns independent): PostgreSQL walked
    800,000 runtime entries (6 s) for `state=FAILURE&sort=-runtime` to find none, as
    failures have no runtime, and SQLite sorted 800,000 rows (0.8 s) for
    `state=SUCCESS&sort=-runtime`. The total (known, cached) decides instead: few matching
    rows are sorted, a bounded cost, with the sort column hidden from the planner as
    `x + 0`; many are walked, with the filter columns hidden as `x || ''`. The default
    sort keeps its (state|name|worker|queue, timestamp) indexes for both.
    """
    column = tasks.c[query.sort.column]
    if query.sort.column == "timestamp" or query.filters == TaskFilters():
        return column, False
    if total > sort_matches_max:
        return column, True
    return (column + "" if query.sort.column in ("name", "state", "worker") else column + 0), False


def after(column, cursor: Cursor, descending: bool):
    """Rows strictly after the cursor in (column, uuid) order, written so the column's
    index bounds the scan: `col <= v AND (col < v OR uuid < u)` rather than a bare OR."""
    if descending:
        return and_(column <= cursor.value,
                    or_(column < cursor.value, tasks.c.uuid < cursor.uuid))
    return and_(column >= cursor.value, or_(column > cursor.value, tasks.c.uuid > cursor.uuid))


def list_columns() -> list:
    """Everything but the traceback; long texts cut in SQL so big rows never travel."""
    columns = []
    for column in tasks.c:
        if column.name == "traceback":
            continue
        if column.name in LIST_TEXT_FIELDS:
            columns.append(func.substr(column, 1, LIST_TEXT + 1).label(column.name))
        else:
            columns.append(column)
    return columns
