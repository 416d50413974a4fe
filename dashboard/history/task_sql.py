"""SQL for the task list: filter conditions, text search, sort plans and keyset bounds.

Kept apart from the service so the query shapes that the benchmarks depend on can be read
(and reviewed against the indexes in collectors/store/models.py) in one place.
"""
from __future__ import annotations

from typing import Callable, Sequence

from sqlalchemy import and_, func, literal, literal_column, or_, true

from lookout.core.store.models import Task
from lookout.core.trouble import lost_clause
from lookout.dashboard.history.query import Cursor, TaskFilters, TaskQuery
from lookout.dashboard.history.text_search import like

tasks = Task.__table__

LIST_TEXT = 200  # chars of args/kwargs/result/exception in list items
LIST_TEXT_FIELDS = ("args", "kwargs", "result", "exception")
# Up to this many matching rows, a non-default sort sorts them instead of walking an index.
SORT_MATCHES_MAX = 100_000


def conditions(filters: TaskFilters, dialect: str, indexed: bool = True,
               lost_after: float = 60.0, search=None, names: Sequence[str] = ()) -> list:
    """SQL conditions for the filters; all values are bound parameters.

    `indexed=False` writes equalities as `col || '' = :v` so that no index serves them.
    `search` replaces the plain `like` condition of `q` (the service may add the text
    index's candidates to it), `names` are the task names `name_pattern` matches: both
    come from text_search.py.
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
    if filters.name_pattern is not None:
        where.append(col("name").in_(names))
    for column, low, high in filters.ranges:
        if low is not None:
            where.append(tasks.c[column] >= low)
        if high is not None:
            where.append(tasks.c[column] <= high)
    if filters.q:
        where.append(search if search is not None else like(filters.q, dialect, indexed))
    if filters.lost:
        where.append(lost_clause(filters.lost_at, lost_after))
    return where


def _states(states: tuple[str, ...], state):
    """`state IN (...)`, where EXPIRED stands for the REVOKED tasks whose revoke said
    expired (query.py): still an IN on the state, so its index serves it."""
    if "EXPIRED" not in states:
        # One state as an equality with the value written out: a partial index's
        # `state = 'FAILURE'` is implied by it, never by an IN, nor (PostgreSQL's generic
        # plans) by `state = $1` (models.py, ix_tasks_failed_*). States are validated names.
        if len(states) == 1:
            return state == literal(states[0], literal_execute=True)
        return state.in_(states)
    others = [s for s in states if s != "EXPIRED"]
    if "REVOKED" in others:
        return state.in_(others)
    return and_(state.in_([*others, "REVOKED"]),
                or_(tasks.c.state != "REVOKED", tasks.c.expired.is_(true())))


def failures_by_runtime(query: TaskQuery) -> bool:
    """`state=FAILURE&sort=[-]runtime` alone: ix_tasks_failed_runtime holds exactly those
    rows in that order, so the page is its first entries. Its runtime column then stays
    visible to the planner (not `runtime + 0`) and the state is `likely` to match, except
    in the segment of failures without a runtime, which SQLite would otherwise look up in
    the runtime index among every other task without one."""
    return (query.sort.column == "runtime"
            and query.filters == TaskFilters(states=("FAILURE",)))


def likely(condition, dialect: str):
    """`condition`, marked on SQLite as true for most rows (`likelihood(..., 0.9)`).

    SQLite keeps no statistics unless someone runs ANALYZE, and without them it takes any
    equality on an index to match about ten rows: it would find the failures through the
    (state, timestamp) index and sort them all rather than read the partial index in
    order. The mark changes only that estimate; PostgreSQL has statistics (and no such
    function).
    """
    return func.likelihood(condition, literal_column("0.9")) if dialect == "sqlite" else condition


def plan(query: TaskQuery, matches: Callable[[int], int],
         sort_matches_max: int = SORT_MATCHES_MAX, search_max: int = 0):
    """The sort expression for the page query, and whether to walk the sort index.

    A page query either walks the sort column's index, filtering as it goes, or finds the
    matching rows through a filter's index and sorts them. Planners guess wrong both ways
    (SQLite keeps no histograms; PostgreSQL assumes columns independent). Measured on 1M
    tasks: PostgreSQL walked 800,000 runtime entries (6 s) for `state=FAILURE&sort=-runtime`
    to find none, as failures have no runtime; SQLite sorted 800,000 rows (0.8 s) for
    `state=SUCCESS&sort=-runtime`; both walked the timestamp index back to a six-hour
    `received_after/before` window a week ago (0.15-0.5 s). So the number of matches
    decides (`matches(n)`: counted up to n + 1, cached): up to `sort_matches_max` matching
    rows are sorted, a bounded cost, with the sort column hidden from the planner as
    `x + 0`; more are walked, with the equality filters hidden as `x || ''`. Equality
    filters with the default sort keep their (state|name|worker|queue, timestamp) indexes,
    which both filter and order.

    With `q`, the text index finds the matches only up to `search_max` of them (0: no index
    serves this `q`); beyond that a match is found sooner by walking the sort index and
    testing rows (1% of rows or more match) than by fetching every match to sort it.
    """
    column = tasks.c[query.sort.column]
    filters = query.filters
    if filters == TaskFilters() or failures_by_runtime(query):
        return column, False
    most = min(sort_matches_max, search_max) if filters.q else sort_matches_max

    def few() -> bool:
        return most > 0 and matches(most) <= most

    if query.sort.column == "timestamp":
        ranged = filters.q or any(name != "timestamp" for name, _, _ in filters.ranges)
        return (column + 0 if ranged and few() else column), False
    if not few():
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
