"""Text index for q=: FTS5 (trigram) on SQLite, a pg_trgm GIN index on PostgreSQL

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 08:00:00

`q=` is a case-insensitive substring of args, kwargs, result or exception; without an
index it read every task row (0.4 s on SQLite, 1 s on PostgreSQL per million tasks).
Trigrams index substrings, so `report-42.csv`, `KeyError('x` or `u4321` are found as
they are; a word index (FTS5's default tokenizer, tsvector) would not find `port-42`.

SQLite: `tasks_fts`, a contentless FTS5 table with the trigram tokenizer (SQLite 3.34+),
one row per non-null text field of a task, rowid = tasks.rowid * 4 + field (args 0,
kwargs 1, result 2, exception 3), kept in step by triggers. One row per field rather than
per task because a task's text arrives in pieces: args with task-received, result or
exception later, usually in another batch. A row per task would be deleted and indexed
again whole at each of those updates (its args and kwargs tokenized three times); a row
per field indexes each text once, and the update trigger touches only the fields whose
text changed (a state change leaves the index alone). Contentless: the text is in `tasks`
already. Triggers rather than the writer: retention's deletes, tests and any later writer
keep the index in step without knowing of it. Their cost depends on the statement shape:
written one statement per row, a task row cost 3-4x more with triggers (each statement
gets a statement journal, and FTS5 writes out its pending terms at each), so the writer
sends 128 rows per statement (collectors/sql_rows.py); then the index adds little to a
batch (measured in benchmarks/README.md).
On a SQLite without FTS5 or trigram the index is left out (a warning) and q= scans.
A later migration that copies `tasks` (Alembic's batch mode on SQLite) drops these
triggers with the old table and renumbers rowids: it must build the index again, as
this one does.

PostgreSQL: one GIN index over the four columns with gin_trgm_ops; `ILIKE '%q%'` uses it
(a BitmapOr over the columns). pg_trgm is a trusted extension (PostgreSQL 13+): the
database owner may create it. Where it cannot be created the index is left out (a
warning) and q= scans, as before.

Building the index for a million existing tasks took 25 s on SQLite (the file grew by a
fifth) and 8 s on PostgreSQL (81 MB), writes to the tasks waiting meanwhile.
"""
import logging

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

log = logging.getLogger('alembic.runtime.migration')

FIELDS = ('args', 'kwargs', 'result', 'exception')  # rowid * 4 + index in this tuple


def _rows(prefix, when):
    """Per field, where `when(field)`: delete the `old` row's text from tasks_fts, or add
    the `new` row's (a contentless FTS5 table deletes by the text that was indexed)."""
    command = "tasks_fts, " if prefix == 'old' else ""
    value = "'delete', " if prefix == 'old' else ""
    return "".join(
        f"INSERT INTO tasks_fts({command}rowid, body) SELECT {value}{prefix}.rowid * 4 + {i}, "
        f"{prefix}.{field} WHERE {when(field)} AND {prefix}.{field} IS NOT NULL;\n"
        for i, field in enumerate(FIELDS))


SQLITE_DDL = [
    "CREATE VIRTUAL TABLE tasks_fts USING fts5(body, content='', tokenize='trigram',"
    " columnsize=0)",
    "CREATE TRIGGER tasks_fts_insert AFTER INSERT ON tasks BEGIN\n"
    + _rows('new', lambda f: '1') + "END",
    # Only when a text changed: a state change leaves the index alone.
    "CREATE TRIGGER tasks_fts_update AFTER UPDATE OF " + ", ".join(FIELDS) + " ON tasks\n"
    "WHEN " + " OR ".join(f"old.{f} IS NOT new.{f}" for f in FIELDS) + " BEGIN\n"
    + _rows('old', lambda f: f'old.{f} IS NOT new.{f}')
    + _rows('new', lambda f: f'old.{f} IS NOT new.{f}') + "END",
    "CREATE TRIGGER tasks_fts_delete AFTER DELETE ON tasks BEGIN\n"
    + _rows('old', lambda f: '1') + "END",
]
SQLITE_FILL = [f"INSERT INTO tasks_fts(rowid, body) SELECT rowid * 4 + {i}, {field} FROM tasks"
               f" WHERE {field} IS NOT NULL" for i, field in enumerate(FIELDS)]
PG_INDEX = ("CREATE INDEX ix_tasks_text_trgm ON tasks USING gin ("
            + ", ".join(f"{f} gin_trgm_ops" for f in FIELDS) + ")")


def _try(statements, what):
    """Run `statements` in a savepoint; on refusal log why and leave them out."""
    conn = op.get_bind()
    try:
        with conn.begin_nested():
            for statement in statements:
                conn.exec_driver_sql(statement)
    except sa.exc.DBAPIError as exc:
        log.warning("no text index (%s): q= will scan the tasks table. %s", what,
                    str(exc.orig).strip().splitlines()[0])
        return False
    return True


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        _try(["CREATE EXTENSION IF NOT EXISTS pg_trgm", PG_INDEX], "pg_trgm")
        return
    if _try(SQLITE_DDL, "SQLite FTS5 with the trigram tokenizer, SQLite 3.34+"):
        for statement in SQLITE_FILL:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_tasks_text_trgm")
        return
    for trigger in ('insert', 'update', 'delete'):
        op.execute(f"DROP TRIGGER IF EXISTS tasks_fts_{trigger}")
    op.execute("DROP TABLE IF EXISTS tasks_fts")
