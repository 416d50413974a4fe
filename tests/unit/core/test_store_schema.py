"""The migrations and the models describe the same schema, on SQLite and PostgreSQL."""
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lookout.core.store.db import make_engine, upgrade
from lookout.core.store.models import Base


def test_migrations_match_models(database_url):
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_is_idempotent_and_keeps_rows(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO workers (hostname, online, first_seen, last_heartbeat, freq)"
            " VALUES ('w1', 1, 1.0, 2.0, 2.0)")
    upgrade(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT hostname FROM workers").scalar() == "w1"
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    engine.dispose()
    assert mode == "wal"
