"""Bulk row helpers shared by the writers: chunked IN selects and batched writes.

Every writer follows the same pattern (load the affected rows, merge in Python, write
back the inserts and the changes as batched statements), so it lives here once.
"""
from __future__ import annotations

import functools
import sqlite3
from itertools import chain
from operator import itemgetter
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import Column, Connection, Table, select

IN_CHUNK = 500  # ids per IN (...) query: well under every backend's parameter limit
ROWS_PER_STATEMENT = 128  # SQLite: rows per multi-row INSERT or UPDATE (a power of two)
# UPDATE ... FROM came with SQLite 3.33; older ones get the driver's executemany.
SQLITE_MULTI_ROW = sqlite3.sqlite_version_info >= (3, 33, 0)


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def select_in(conn: Connection, table: Table, column: Column, values: Sequence[Any],
              *extra) -> list[dict[str, Any]]:
    """Rows of `table` whose `column` is one of `values`, in chunked IN queries."""
    found: list[dict[str, Any]] = []
    for chunk in chunks(values):
        query = select(table).where(column.in_(chunk), *extra)
        found.extend(dict(row) for row in conn.execute(query).mappings())
    return found


def write_rows(conn: Connection, table: Table, keys: Sequence[str],
               inserts: list[dict[str, Any]], updates: list[dict[str, Any]],
               columns: Sequence[str] | None = None) -> None:
    """INSERT the new rows and UPDATE the changed ones (matched on `keys`), each batched.

    `columns`, when given, limits what the UPDATE sets (the keys are always matched).

    Rows must hold every column; the columns need no type conversion. SQLite gets
    multi-row statements with positional parameters straight to the driver (SQLAlchemy's
    per-row parameter handling was the largest single cost of a batch); PostgreSQL gets
    one statement over arrays sent as binary parameters, as a statement per row costs a
    server parse/bind/execute each (measured: 12 s down to 5 s for 150k events).

    Why multi-row statements on SQLite rather than executemany: a write to a table with
    triggers (the text index's on `tasks`, migration 0011) runs in a statement transaction
    of its own, with a statement journal, and FTS5 writes out its pending index at each.
    One statement per row made a task row cost 55-75 us instead of 15-30; one per 128 rows
    costs 15-25 us with the index kept (measured with short texts: 50,000 tasks inserted,
    then updated).
    """
    if conn.dialect.name == "postgresql":
        _write_rows_pg(conn, table, keys, inserts, updates, columns)
        return
    if not SQLITE_MULTI_ROW:
        _write_rows_executemany(conn, table, keys, inserts, updates, columns)
        return
    every = tuple(c.name for c in table.columns)
    if inserts:
        _in_statements(conn, inserts, every,
                       lambda size: _sqlite_insert(table.name, every, size))
    if updates:
        order = (*keys, *(c for c in (columns or every) if c not in keys))
        _in_statements(conn, updates, order,
                       lambda size: _sqlite_update(table.name, order, len(keys), size))


def _in_statements(conn: Connection, rows: list[dict[str, Any]], columns: Sequence[str],
                   sql: Callable[[int], str]) -> None:
    getter = _getter(columns)
    start = 0
    for size in statement_sizes(len(rows)):
        batch = rows[start:start + size]
        start += size
        conn.exec_driver_sql(sql(size), tuple(chain.from_iterable(map(getter, batch))))


def statement_sizes(count: int, most: int = ROWS_PER_STATEMENT) -> Iterator[int]:
    """Rows per statement for `count` rows: full statements of `most` rows, then powers
    of two. Each size is one statement text, prepared and kept by the driver (128 per
    connection): this way a table has at most log2(most) + 1 texts per kind."""
    while count >= most:
        yield most
        count -= most
    size = most >> 1
    while count:
        if count >= size:
            yield size
            count -= size
        size >>= 1


@functools.lru_cache(maxsize=256)
def _sqlite_insert(table: str, columns: tuple[str, ...], size: int) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    row = "(" + ", ".join(["?"] * len(columns)) + ")"
    return f'INSERT INTO "{table}" ({names}) VALUES ' + ", ".join([row] * size)


@functools.lru_cache(maxsize=256)
def _sqlite_update(table: str, order: tuple[str, ...], keys: int, size: int) -> str:
    """UPDATE ... FROM (VALUES ...): VALUES columns are named column1, column2, ..."""
    row = "(" + ", ".join(["?"] * len(order)) + ")"
    sets = ", ".join(f'"{c}" = v.column{i + 1}' for i, c in enumerate(order) if i >= keys)
    match = " AND ".join(f'"{table}"."{c}" = v.column{i + 1}' for i, c in enumerate(order[:keys]))
    values = ", ".join([row] * size)
    return f'UPDATE "{table}" SET {sets} FROM (VALUES {values}) AS v WHERE {match}'


def _write_rows_executemany(conn: Connection, table: Table, keys: Sequence[str],
                            inserts: list[dict[str, Any]], updates: list[dict[str, Any]],
                            set_columns: Sequence[str] | None):
    quote = conn.dialect.identifier_preparer.quote
    name = quote(table.name)
    if inserts:
        columns = [c.name for c in table.columns]
        sql = (f"INSERT INTO {name} ({', '.join(quote(c) for c in columns)}) "
               f"VALUES ({', '.join(['?'] * len(columns))})")
        conn.exec_driver_sql(sql, list(map(_getter(columns), inserts)))
    if updates:
        columns = [c for c in (set_columns or [c.name for c in table.columns])
                   if c not in keys]
        sql = (f"UPDATE {name} SET {', '.join(f'{quote(c)} = ?' for c in columns)} "
               f"WHERE {' AND '.join(f'{quote(k)} = ?' for k in keys)}")
        conn.exec_driver_sql(sql, list(map(_getter((*columns, *keys)), updates)))


def _getter(columns: Sequence[str]) -> Callable[[dict[str, Any]], tuple]:
    """Row dict -> tuple of `columns`, in C: a generator per row was a tenth of a batch."""
    if len(columns) == 1:
        return lambda row: (row[columns[0]],)
    return itemgetter(*columns)


def _write_rows_pg(conn: Connection, table: Table, keys: Sequence[str],
                   inserts: list[dict[str, Any]], updates: list[dict[str, Any]],
                   set_columns: Sequence[str] | None) -> None:
    quote = conn.dialect.identifier_preparer.quote

    def unnest(columns):
        arrays = ", ".join(f"%b::{table.c[c].type.compile(conn.dialect)}[]" for c in columns)
        return f"unnest({arrays})"

    def params(rows, columns):
        return tuple([row[c] for row in rows] for c in columns)

    every = [c.name for c in table.columns]
    if inserts:
        names = ", ".join(quote(c) for c in every)
        conn.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({names}) "
                             f"SELECT * FROM {unnest(every)}", params(inserts, every))
    if updates:
        columns = [*keys, *(c for c in (set_columns or every) if c not in keys)]
        names = ", ".join(quote(c) for c in columns)
        sets = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns if c not in keys)
        match = " AND ".join(f"t.{quote(k)} = v.{quote(k)}" for k in keys)
        conn.exec_driver_sql(f"UPDATE {quote(table.name)} AS t SET {sets} "
                             f"FROM {unnest(columns)} AS v({names}) WHERE {match}",
                             params(updates, columns))
