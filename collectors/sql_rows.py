"""Bulk row helpers shared by the writers: chunked IN selects and executemany writes.

Every writer follows the same pattern (load the affected rows, merge in Python, write
back the inserts and the changes as two executemany statements), so it lives here once.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from sqlalchemy import Column, Connection, Table, and_, bindparam, select, update

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
    """INSERT the new rows and UPDATE the changed ones (matched on `keys`), each batched."""
    if inserts:
        conn.execute(table.insert(), inserts)
    if updates:
        stmt = update(table).where(and_(*(table.c[k] == bindparam(f"b_{k}") for k in keys)))
        conn.execute(stmt, [{**{f"b_{k}": row[k] for k in keys},
                             **{k: v for k, v in row.items() if k not in keys}}
                            for row in updates])
