"""Text search (`q=`) and task name patterns (`name=*report*`) as SQL conditions.

`q` is a case-insensitive substring of args, kwargs, result or exception. The trigram
index of migration 0011 serves it from three characters on: on PostgreSQL `ILIKE` uses the
pg_trgm GIN index by itself; on SQLite the FTS5 table `tasks_fts` (one row per task
field, rowid = tasks.rowid * 4 + field) yields candidate tasks and `LIKE` checks each, so
the answer is exactly LIKE's (ASCII case folding, `%` and `_` literal) while only
candidates are read. Shorter strings have no trigram: they scan, as every `q` once did.

A name pattern has `*` for any run of characters. Task names are few (tens to
thousands) where tasks are millions, so the distinct names are listed with a loose index
scan (one probe of the name index per name) and matched against the pattern first; the
tasks are then found through `name IN (those names)` on that same index, as for a list of
exact names. (Left to one SQL statement, PostgreSQL tested the pattern against every name
again for each task it walked: 44 ms, where listing the names first takes 2.)
"""
from __future__ import annotations

from sqlalchemy import column, func, literal_column, or_, select, table, text

from lookout.core.store.db import TEXT_INDEX
from lookout.core.store.models import Task

tasks = Task.__table__

SEARCH_FIELDS = ("args", "kwargs", "result", "exception")  # the order of migration 0011
MIN_INDEXED = 3  # characters: a trigram index cannot serve shorter strings
FTS_TABLE, PG_INDEX = TEXT_INDEX
_fts = table(FTS_TABLE, column("rowid"))
_match = literal_column(FTS_TABLE).op("MATCH")


def _like_pattern(value: str, wildcard: str | None = None) -> str:
    """`value` as a LIKE pattern escaped with '/', its `wildcard` character made `%`."""
    escaped = value.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return escaped.replace(wildcard, "%") if wildcard else "%" + escaped + "%"


def like(q: str, dialect: str, indexed: bool = True):
    """Substring match, case-insensitive, with % and _ in `q` taken literally.

    SQLite's LIKE already ignores ASCII case (and its lower() knows no more than ASCII),
    so plain LIKE there avoids lower() copies of four text columns per row: 2x faster.
    `indexed=False` writes `col || ''` so that PostgreSQL walks another index instead.
    """
    pattern = _like_pattern(q)
    columns = [tasks.c[f] if indexed else tasks.c[f] + "" for f in SEARCH_FIELDS]
    if dialect == "sqlite":
        return or_(*(c.like(pattern, escape="/") for c in columns))
    return or_(*(c.ilike(pattern, escape="/") for c in columns))


def has_index(conn) -> bool:
    """Whether migration 0011 could build the text index on this store."""
    if conn.dialect.name == "sqlite":
        found = text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name")
        return conn.execute(found, {"name": FTS_TABLE}).scalar() is not None
    found = text("SELECT 1 FROM pg_indexes WHERE indexname = :name")
    return conn.execute(found, {"name": PG_INDEX}).scalar() is not None


def _phrase(q: str) -> str:
    """`q` as one FTS5 string: with the trigram tokenizer, a case-insensitive substring."""
    return '"' + q.replace('"', '""') + '"'


def fts_hits(conn, q: str, most: int) -> int:
    """Indexed fields holding `q` (SQLite), counted up to `most` + 1: more than `most`
    means too many candidates to fetch one by one (`fts_candidates`)."""
    hits = select(_fts.c.rowid).where(_match(_phrase(q))).limit(most + 1).subquery()
    return conn.execute(select(func.count()).select_from(hits)).scalar_one()


def fts_count(q: str, most: int):
    """SQLite, `q` alone and in many tasks: those holding it, counted up to `most` + 1 by
    reading the index's hits in order, one rowid lookup each (LIKE has the last word).
    Scanning the tasks for 10,001 matches took 25-125 ms at 1M tasks when `q` was in 1-10%
    of them; this takes 9-23 ms (measured)."""
    rowid = literal_column("tasks.rowid")
    hits = (select(rowid).distinct()
            .select_from(_fts.join(tasks, rowid == _fts.c.rowid.op(">>")(2)))
            .where(_match(_phrase(q)), like(q, "sqlite")).limit(most + 1).subquery())
    return select(func.count()).select_from(hits)


def _hit_tasks(q: str):
    """SQLite: the rowids of the tasks one of whose fields holds `q` by the trigram index."""
    return select(_fts.c.rowid.op(">>")(2)).where(_match(_phrase(q)))


def fts_candidates(q: str):
    """SQLite: tasks one of whose fields holds `q` by the trigram index (AND it with
    `like`, which has the last word)."""
    return literal_column("tasks.rowid").in_(_hit_tasks(q))


def fts_members(q: str):
    """SQLite: the tasks one of whose fields holds `q` by the trigram index, as a filter
    that never drives the query (`rowid + 0`): another index (a name, a state) is walked
    and each of its entries checked against the set of hits, rows read only for members
    (AND it with `like`). For a `q` in more fields than can be fetched one by one but few
    enough to hold as a set: `q=u43&name=...` at 1M tasks counted its 450 matches in
    5.5 ms this way, where reading the name's 20,000 rows to test LIKE took 23."""
    return (literal_column("tasks.rowid") + 0).in_(_hit_tasks(q))


def matching_names(conn, pattern: str) -> list[str]:
    """The distinct task names `pattern` matches: `*` is any run of characters, the rest
    literal and case-insensitive (`proj.reports.*`, `*report*`, `*.send`)."""
    names = _distinct_names()
    escaped = _like_pattern(pattern, "*")
    matching = names.c.n.like(escaped, escape="/") if conn.dialect.name == "sqlite" \
        else names.c.n.ilike(escaped, escape="/")
    return list(conn.execute(select(names.c.n).where(names.c.n.is_not(None), matching))
                .scalars())


def _distinct_names():
    """Every distinct task name, one index probe each (a loose index scan), as `n`."""
    probe = tasks.alias("name_probe")
    first = select(select(func.min(probe.c.name)).correlate(None).scalar_subquery()
                   .label("n")).cte("task_names", recursive=True)
    after = tasks.alias("name_next")
    return first.union_all(
        select(select(func.min(after.c.name)).where(after.c.name > first.c.n)
               .scalar_subquery()).where(first.c.n.is_not(None)))
