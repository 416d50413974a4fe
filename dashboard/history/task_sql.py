"""SQL for the task list: filter conditions, text search, sort plans and keyset bounds.

Kept apart from the service so the query shapes that the benchmarks depend on can be read
(and reviewed against the indexes in collectors/store/models.py) in one place.
"""
from __future__ import annotations

from sqlalchemy import and_, func, or_, true

from lookout.core.store.models import Task
from lookout.core.trouble import lost_clause
from lookout.dashboard.history.query import Cursor, TaskFilters, TaskQuery

tasks = Task.__table__

LIST_TEXT = 200  # chars of args/kwargs/result/exception in list items
LIST_TEXT_FIELDS = ("args", "kwargs", "result", "exception")
SEARCH_FIELDS = ("args", "kwargs", "result", "exception")
# Up to this many matching rows, a non-default sort sorts them instead of walking an index.
SORT_MATCHES_MAX = 100_000


def conditions(filters: TaskFilters, dialect: str, indexed: bool = True,
               lost_after: float = 60.0) -> list:
    """SQL conditions for the filters; all values are bound parameters.

    `indexed=False` writes equalities as `col || '' = :v` so that no index serves them.
    """
    def col(name: str):
        return tasks.c[name] if indexed else tasks.c[name] + ""

    where = []
    if filters.states:
        where.append(_states(filters.states, col("state")))
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
    if filters.lost:
        where.append(lost_clause(filters.lost_at, lost_after))
    return where


def _states(states: tuple[str, ...], state):
    """`state IN (...)`, where EXPIRED stands for the REVOKED tasks whose revoke said
    expired (query.py): still an IN on the state, so its index serves it."""
    if "EXPIRED" not in states:
        return state.in_(states)
    others = [s for s in states if s != "EXPIRED"]
    if "REVOKED" in others:
        return state.in_(others)
    return and_(state.in_([*others, "REVOKED"]),
                or_(tasks.c.state != "REVOKED", tasks.c.expired.is_(true())))


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
    """The sort expression for the page query, and whether to walk the sort index.

    A page query either walks the sort column's index, filtering as it goes, or finds the
    matching rows through a filter's index and sorts them. Planners guess wrong both ways
    (SQLite keeps no histograms; PostgreSQL assumes columns independent). Measured on 1M
    tasks: PostgreSQL walked 800,000 runtime entries (6 s) for `state=FAILURE&sort=-runtime`
    to find none, as failures have no runtime; SQLite sorted 800,000 rows (0.8 s) for
    `state=SUCCESS&sort=-runtime`; both walked the timestamp index back to a six-hour
    `received_after/before` window a week ago (0.15-0.5 s). So the total (known, cached)
    decides: up to `sort_matches_max` matching rows are sorted, a bounded cost, with the
    sort column hidden from the planner as `x + 0`; more are walked, with the equality
    filters hidden as `x || ''`. Equality filters with the default sort keep their
    (state|name|worker|queue, timestamp) indexes, which both filter and order.
    """
    column = tasks.c[query.sort.column]
    filters = query.filters
    if filters == TaskFilters():
        return column, False
    if query.sort.column == "timestamp":
        ranged = any(name != "timestamp" for name, _, _ in filters.ranges)
        return (column + 0 if ranged and total <= sort_matches_max else column), False
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
