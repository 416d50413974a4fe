"""Engine creation and schema migration, the same code for SQLite and PostgreSQL.

SQLite gets WAL mode so the web process reads while the collector writes, and a busy
timeout so a reader never sees "database is locked" during a batch commit.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, NullPool, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from lookout.core.config import redact_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# What SQLAlchemy raises when the database refuses, drops or times out a connection: an
# outage to report and wait out, not a bug to show a traceback for.
STORE_UNAVAILABLE = (OperationalError, DisconnectionError, PoolTimeout)
# The text index behind `q=` (migration 0011): on SQLite the FTS5 table `tasks_fts` (with
# its shadow tables tasks_fts_*) and triggers on tasks, on PostgreSQL a pg_trgm GIN index.
# Neither store can build the other's, so they live outside the models, and
# `include_name` keeps comparisons of models and database from taking them for drift.
TEXT_INDEX = ("tasks_fts", "ix_tasks_text_trgm")
# libpq waits forever by default: for a connection to a host that does not answer, and
# on an established connection whose peer vanished (host down, network cut) until the
# kernel gives up many minutes later. Every collector thread and web request then hangs
# in psycopg, and a stopping collector with them. These bounds turn both into errors
# (the collector spills, the web answers 503) unless the URL sets its own: a connection
# gets 5 s to open, and a silent peer is dropped after about a minute: keepalive probes
# from 30 s idle, every 10 s, 3 missed, while waiting for an answer; a request the peer
# never acknowledged, after 60 s (tcp_user_timeout). A slow query is neither.
POSTGRESQL_SOCKET_BOUNDS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 30,
                            "keepalives_interval": 10, "keepalives_count": 3,
                            "tcp_user_timeout": 60_000}


# What the README promises; any other SQLAlchemy URL is the user's own experiment.
SUPPORTED_STORES = "Lookout supports sqlite:// and postgresql://"


class StoreURLError(Exception):
    """A store URL this installation cannot open at all: not a URL, a database kind
    SQLAlchemy does not know, or one whose driver is not installed. Not a ValueError: it
    is no mistake in the command's options, and every command (the account commands too)
    says it in one line (dashboard/cli.py `LookoutGroup`)."""


def include_name(name: str | None, type_: str, parent_names) -> bool:
    """Alembic's name filter (autogenerate, compare_metadata): all but the text index."""
    return not (name or "").startswith(TEXT_INDEX)


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs (psycopg2 is not a dependency)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def parse_store_url(url: str) -> URL:
    """The URL parsed, or a StoreURLError saying it is none (not SQLAlchemy's traceback)."""
    try:
        return make_url(url)
    except ArgumentError:
        raise StoreURLError(f"store URL {redact_url(url)!r} is not a database URL "
                            f"({SUPPORTED_STORES})") from None


def create_store_engine(url: str, **kwargs) -> Engine:
    """`create_engine`, which imports the database's driver: a driver or a dialect that is
    not installed ("mysql://" without MySQLdb) is a StoreURLError naming the URL."""
    try:
        return create_engine(url, **kwargs)
    except ImportError as exc:
        raise StoreURLError(f"store driver missing for {redact_url(url)}: {exc} "
                            f"({SUPPORTED_STORES})") from None
    except NoSuchModuleError:  # "foo://": no such dialect
        kind = url.partition("://")[0]
        raise StoreURLError(f"store {redact_url(url)}: SQLAlchemy knows no database "
                            f"{kind!r} ({SUPPORTED_STORES})") from None


def make_engine(url: str, **kwargs) -> Engine:
    """Create an engine tuned for Lookout's one-writer, many-readers pattern."""
    url = normalise_url(url)
    parsed = parse_store_url(url)
    if parsed.get_backend_name() == "sqlite":
        folder = _sqlite_folder(parsed)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            # A connection reads the planner's statistics when it opens, never again: the
            # collector refreshes them now and then (collectors/planner_statistics.py).
            kwargs.setdefault("pool_recycle", 600)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_store_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "postgresql":
        connect_args = kwargs.setdefault("connect_args", {})
        for name, value in POSTGRESQL_SOCKET_BOUNDS.items():
            if name not in parsed.query:
                connect_args.setdefault(name, value)
    return create_store_engine(url, **kwargs)


def error_line(exc: BaseException, limit: int = 300) -> str:
    """The database driver's own first line of a SQLAlchemy error (host, database and
    reason: for logs, not for answers), or its type when the driver said nothing."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return (lines[0] if lines else type(cause).__name__)[:limit]


def _sqlite_folder(parsed) -> Path | None:
    """The folder of a SQLite database file; None for in-memory and URI databases."""
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve().parent


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


def schema_revision(url: str) -> str | None:
    """The Alembic revision the store is at; None for a store without Lookout's schema."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to call on every start (no-op when current),
    and from several processes at once: each waits for the one migrating before it."""
    from alembic import command

    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


# pg_advisory_lock key of migrations ("lkmg" in ASCII); the collectors' merge lock differs.
MIGRATION_LOCK = 0x6C6B6D67


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold the store's migration lock: a PostgreSQL advisory lock, or on SQLite an
    exclusive flock on the database's folder.

    `lookout web` and `lookout collect` started together on a new store (one compose
    file, one systemd target) both ran every migration at once, and all but one failed
    ("table ... already exists", "duplicate column name"). The folder is locked, not the
    database file: closing any other descriptor of that file would drop the POSIX locks
    SQLite's own connections in this process hold on it.
    """
    url = normalise_url(url)
    parsed = parse_store_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_store_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
                conn.commit()
                try:
                    yield
                finally:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
                    conn.commit()
        finally:
            engine.dispose()
        return
    folder = _sqlite_folder(parsed) if parsed.get_backend_name() == "sqlite" else None
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the flock
