"""The migrations and the models describe the same schema, on SQLite and PostgreSQL,
and migrations that convert data do it alike on both."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from helpers.pg import create_database, drop_database
from lookout.core.store import db as store_db
from lookout.core.store.db import include_name, make_engine, upgrade
from lookout.core.store.models import Base


def schema_diff(conn) -> list:
    """Models against database; the text index (migration 0011) is outside the models."""
    context = MigrationContext.configure(conn, opts={"include_name": include_name})
    return compare_metadata(context, Base.metadata)


def test_migrations_match_models(database_url):
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = schema_diff(conn)
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


def store_at(request, tmp_path, revision: str):
    """A store of its own migrated to `revision` only (SQLite file or PostgreSQL database)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, revision)
        yield url
        return
    name, url = create_database(f"lookout_{revision}")
    try:
        upgrade(url, revision)
        yield url
    finally:
        drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_at_0008(request, tmp_path):
    """The schema before eta became a float."""
    yield from store_at(request, tmp_path, "0008")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_at_0010(request, tmp_path):
    """The schema before the text index."""
    yield from store_at(request, tmp_path, "0010")


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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_starting_together_on_a_new_store_all_migrate_it(backend, tmp_path):
    """A web and a collector started at once on a new store: without the migration lock
    all but one failed ("table ... already exists", "duplicate column name")."""
    import subprocess
    import sys

    if backend == "sqlite":
        name, url = None, f"sqlite:///{tmp_path / 'data' / 'new.db'}"
    else:
        name, url = create_database("lookout_race")
    script = "import sys; from lookout.core.store.db import upgrade; upgrade(sys.argv[1])"
    try:
        procs = [subprocess.Popen([sys.executable, "-c", script, url],
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        results = [(proc.wait(timeout=120), proc.stderr.read()) for proc in procs]
        for proc in procs:
            proc.stderr.close()
        assert [code for code, _ in results] == [0, 0, 0], [err[-500:] for _, err in results]
        engine = make_engine(url)
        with engine.connect() as conn:
            assert not schema_diff(conn)
        engine.dispose()
    finally:
        if name:
            drop_database(name)


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
        diff = schema_diff(conn)
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


def test_0011_indexes_the_text_of_existing_tasks_on_both_backends(store_at_0010):
    """The text index is built for the rows already stored, and q= then goes through it;
    the downgrade removes it and leaves the schema of 0010."""
    from werkzeug.datastructures import MultiDict

    from lookout.dashboard.history.query import parse_task_query
    from lookout.dashboard.history.service import HistoryService

    engine = make_engine(store_at_0010)
    fields = ("args", "kwargs", "result", "exception")
    with engine.begin() as conn:
        conn.execute(text('INSERT INTO tasks (uuid, state, state_ts, retries, "timestamp", '
                          'updated_at, args, kwargs, result, exception) VALUES (:uuid, '
                          "'SUCCESS', 1.0, 0, :ts, 1.0, :args, :kwargs, :result, :exception)"),
                     [{"uuid": f"old-{field}", "ts": float(i),
                       **{f: (f"needle-in-{f}" if f == field else None) for f in fields}}
                      for i, field in enumerate(fields)])
    upgrade(store_at_0010)

    def found(q: str) -> set[str]:
        page = HistoryService(engine).list_tasks(parse_task_query(MultiDict({"q": q})))
        return {item["uuid"] for item in page.items}

    with engine.connect() as conn:
        assert schema_diff(conn) == []
        if conn.dialect.name == "sqlite":  # the index itself holds each field's text
            indexed = conn.exec_driver_sql("SELECT rowid % 4 FROM tasks_fts WHERE tasks_fts "
                                           "MATCH '\"needle-in\"' ORDER BY 1").scalars().all()
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = conn.execute(text("EXPLAIN SELECT uuid FROM tasks WHERE args ILIKE :p "
                                     "OR result ILIKE :p"), {"p": "%needle%"}).scalars().all()
            indexed = [0, 1, 2, 3] if "ix_tasks_text_trgm" in "\n".join(plan) else plan
            conn.exec_driver_sql("RESET enable_seqscan")
    assert indexed == [0, 1, 2, 3]
    assert found("NEEDLE-IN") == {f"old-{f}" for f in fields}
    assert found("in-result") == {"old-result"}

    command.downgrade(store_db.alembic_config(store_at_0010), "0010")
    with engine.connect() as conn:
        leftovers = conn.execute(text(
            "SELECT name FROM sqlite_master WHERE name LIKE 'tasks_fts%'" if
            conn.dialect.name == "sqlite" else
            "SELECT indexname FROM pg_indexes WHERE indexname = 'ix_tasks_text_trgm'")).all()
    engine.dispose()
    assert leftovers == []


def test_postgresql_connections_are_bounded_unless_the_url_says_otherwise(pg_database_url):
    """A silent PostgreSQL must not hang the collector (test_collector_spill); a URL's
    own libpq settings still win."""
    from lookout.core.store.db import POSTGRESQL_SOCKET_BOUNDS

    def parameters(url: str) -> dict[str, str]:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                return conn.connection.driver_connection.info.get_parameters()
        finally:
            engine.dispose()

    default = parameters(pg_database_url)
    assert default["connect_timeout"] == str(POSTGRESQL_SOCKET_BOUNDS["connect_timeout"])
    assert default["keepalives_idle"] == "30" and default["tcp_user_timeout"] == "60000"
    sep = "&" if "?" in pg_database_url else "?"
    own = parameters(f"{pg_database_url}{sep}connect_timeout=17")
    assert own["connect_timeout"] == "17" and own["keepalives_idle"] == "30"
