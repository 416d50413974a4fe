"""The migrations and the models describe the same schema, on SQLite and PostgreSQL,
and migrations that convert data do it alike on both."""
import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lookout.core.store import db as store_db
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


@pytest.fixture(params=["sqlite", "postgresql"])
def store_at_0008(request, tmp_path):
    """A store of its own migrated to 0008 only: the schema before eta became a float."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0008")
        yield url
        return
    session_url = request.getfixturevalue("pg_database_url")
    name = f"lookout_0008_{uuid.uuid4().hex[:8]}"
    admin = create_engine(session_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(session_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url, "0008")
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


OLD_TASKS = {  # uuid: (eta, expires, parent_id, revoke event info)
    "utc": ("2023-11-14T22:13:20+00:00", "2023-11-14T23:13:20.250000+01:00", None, None),
    "naive": ("2023-11-14T22:13:20.5", None, None, None),
    "junk": ("tomorrow", "", None, None),
    "retried": (None, None, "retried", None),
    "child": (None, None, "utc", None),
    "expired": (None, None, None, '{"terminated":false,"signum":null,"expired":true}'),
    "spaced": (None, None, None, '{"terminated": false, "expired": true}'),
    "revoked": (None, None, None, '{"terminated":true,"signum":9,"expired":false}'),
}


def test_0009_turns_eta_text_into_epoch_seconds_on_both_backends(store_at_0008):
    engine = make_engine(store_at_0008)
    insert_task = text('INSERT INTO tasks (uuid, state, state_ts, retries, "timestamp", '
                       'updated_at, eta, expires, parent_id, revoked_at) VALUES (:uuid, :state, '
                       '1.0, 0, 1.0, 1.0, :eta, :expires, :parent_id, :revoked_at)')
    rows = [{"uuid": key, "eta": eta, "expires": expires, "parent_id": parent,
             "state": "REVOKED" if info else "SUCCESS", "revoked_at": 2.0 if info else None}
            for key, (eta, expires, parent, info) in OLD_TASKS.items()]
    # More than one page of the conversion (5,000 rows a round trip).
    rows += [{"uuid": f"bulk-{i:05d}", "eta": "2023-11-14T22:13:21Z", "expires": None,
              "parent_id": None, "state": "SUCCESS", "revoked_at": None} for i in range(5001)]
    with engine.begin() as conn:
        conn.execute(insert_task, rows)
        conn.execute(text("INSERT INTO task_events (task_uuid, type, hostname, \"timestamp\", "
                          "local_received, clock, info) VALUES (:uuid, 'task-revoked', 'w', "
                          "2.0, 2.0, 0, :info)"),
                     [{"uuid": key, "info": info} for key, (*_, info) in OLD_TASKS.items()
                      if info])
    upgrade(store_at_0008)

    with engine.connect() as conn:
        found = {r.uuid: r for r in conn.execute(text(
            "SELECT uuid, eta, expires, parent_id, expired FROM tasks"))}
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []  # the tasks table kept every index through the copy
    T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    assert (found["utc"].eta, found["utc"].expires) == (T0, T0 + 0.25)
    assert (found["naive"].eta, found["naive"].expires) == (T0 + 0.5, None)
    assert (found["junk"].eta, found["junk"].expires) == (None, None)
    assert {found[f"bulk-{i:05d}"].eta for i in range(5001)} == {T0 + 1}
    assert found["retried"].parent_id is None and found["child"].parent_id == "utc"
    assert {k: found[k].expired for k in ("expired", "spaced", "revoked", "utc")} == \
        {"expired": True, "spaced": True, "revoked": False, "utc": None}

    # The downgrade writes the text back, in UTC.
    command.downgrade(store_db.alembic_config(store_at_0008), "0008")
    with engine.connect() as conn:
        back = dict(conn.execute(text("SELECT uuid, eta FROM tasks WHERE uuid IN "
                                      "('utc', 'naive', 'junk')")).all())
    engine.dispose()
    assert back == {"utc": "2023-11-14T22:13:20+00:00",
                    "naive": "2023-11-14T22:13:20.500000+00:00", "junk": None}
