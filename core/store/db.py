"""Engine creation and schema migration, the same code for SQLite and PostgreSQL.

SQLite gets WAL mode so the web process reads while the collector writes, and a busy
timeout so a reader never sees "database is locked" during a batch commit.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The text index behind `q=` (migration 0011): on SQLite the FTS5 table `tasks_fts` (with
# its shadow tables tasks_fts_*) and triggers on tasks, on PostgreSQL a pg_trgm GIN index.
# Neither store can build the other's, so they live outside the models, and
# `include_name` keeps comparisons of models and database from taking them for drift.
TEXT_INDEX = ("tasks_fts", "ix_tasks_text_trgm")


def include_name(name: str | None, type_: str, parent_names) -> bool:
    """Alembic's name filter (autogenerate, compare_metadata): all but the text index."""
    return not (name or "").startswith(TEXT_INDEX)


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs (psycopg2 is not a dependency)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs) -> Engine:
    """Create an engine tuned for Lookout's one-writer, many-readers pattern."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(url: str):
    """An Alembic config pointing at the bundled migrations, without any ini file."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def deployment_id(engine: Engine) -> str:
    """The store's random deployment id (written by migration 0003)."""
    from sqlalchemy import select

    from lookout.core.store.models import Deployment

    with engine.connect() as conn:
        return conn.scalar(select(Deployment.id).order_by(Deployment.created_at).limit(1))


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to call on every start (no-op when current)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
