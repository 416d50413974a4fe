"""Bulk row helpers shared by the writers: chunked IN selects and executemany writes.

Every writer follows the same pattern (load the affected rows, merge in Python, write
back the inserts and the changes as two executemany statements), so it lives here once.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from sqlalchemy import Column, Connection, Table, select

IN_CHUNK = 500  # ids per IN (...) query: well under every backend's parameter limit


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
               inserts: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
    """INSERT the new rows and UPDATE the changed ones (matched on `keys`), each batched.

    Rows must hold every column. Plain driver executemany with positional tuples: the
    columns need no type conversion, and SQLAlchemy's per-row parameter processing was
    the largest single cost of a batch (measured).
    """
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    name = quote(table.name)
    if inserts:
        columns = [c.name for c in table.columns]
        sql = (f"INSERT INTO {name} ({', '.join(quote(c) for c in columns)}) "
               f"VALUES ({', '.join([mark] * len(columns))})")
        conn.exec_driver_sql(sql, [tuple(row[c] for c in columns) for row in inserts])
    if updates:
        columns = [c.name for c in table.columns if c.name not in keys]
        sql = (f"UPDATE {name} SET {', '.join(f'{quote(c)} = {mark}' for c in columns)} "
               f"WHERE {' AND '.join(f'{quote(k)} = {mark}' for k in keys)}")
        conn.exec_driver_sql(sql, [tuple(row[c] for c in (*columns, *keys))
                                   for row in updates])
