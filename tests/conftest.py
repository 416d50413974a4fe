"""Shared fixtures: real Redis/RabbitMQ/PostgreSQL isolated per test session, and apps.

Each session gets its own Redis database number (events are published per database, so
sessions running side by side never see each other's events), its own RabbitMQ vhost and
its own PostgreSQL database. Tests that leave a thread running fail. `make_app` is the one
way tests build a web app: from explicit settings only, never the developer's LOOKOUT_*
environment. Layout: unit/<package>/ (in-process, real databases), integration/ (real
brokers, workers and Lookout processes), browser/ (real chromium); helpers/ holds code
tests import, and fixtures live in conftest.py files.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from helpers.pg import create_database, drop_database
from lookout.core.store import db as store_db
from lookout.core.store.models import Base

REDIS = "redis://127.0.0.1:6379"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def redis_db() -> int:
    """Claim a Redis database number (1-15) for this session with a lock file."""
    for number in range(1, 16):
        handle = open(f"/tmp/lookout-test-redis-db-{number}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        import redis

        redis.Redis.from_url(f"{REDIS}/{number}").flushdb()
        yield number
        handle.close()
        return
    pytest.fail("no free Redis database number for this test session")


@pytest.fixture(scope="session")
def redis_broker(redis_db: int) -> str:
    return f"{REDIS}/{redis_db}"


@pytest.fixture(scope="session")
def amqp_broker() -> str:
    """A RabbitMQ vhost of this session's own, deleted afterwards."""
    vhost = f"lookout-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True,
                   capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest",
                    ".*", ".*", ".*"], check=True, capture_output=True)
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


@pytest.fixture(scope="session")
def pg_database_url() -> str:
    """A PostgreSQL database of this session's own, migrated, dropped afterwards."""
    name, url = create_database("lookout_test")
    try:
        store_db.upgrade(url)
        yield url
    finally:
        drop_database(name)


def _truncate_all(url: str) -> None:
    engine = store_db.make_engine(url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A migrated, empty store: runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lookout.db'}"
        store_db.upgrade(url)
        return url
    url = request.getfixturevalue("pg_database_url")
    _truncate_all(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A migrated, empty SQLite store, for tests where the backend does not matter."""
    url = f"sqlite:///{tmp_path / 'lookout.db'}"
    store_db.upgrade(url)
    return url


@pytest.fixture
def make_app():
    """Build web apps from explicit settings (LOOKOUT_* env ignored); engines disposed after.

    `make_app(database_url, clock=..., **settings)`: see helpers/apps.py.
    """
    from helpers.apps import build_app

    apps = []

    def make(database_url: str, **settings):
        app = build_app(database_url, **settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["lookout.engine"].dispose()


@pytest.fixture
def engine(app):
    """The store engine of the module's `app` fixture."""
    return app.extensions["lookout.engine"]


@pytest.fixture
def client(app):
    """A Flask test client for the module's `app` fixture."""
    return app.test_client()


@pytest.fixture
def artifacts_dir(request) -> Path:
    """Where a test saves screenshots and logs for a reviewer to look at."""
    path = ARTIFACTS / request.node.name.replace("/", "_")[:120]
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session", autouse=True)
def lookout_data_dir(tmp_path_factory) -> Path:
    """This session's data folder (default store, spill files), also for subprocesses."""
    folder = tmp_path_factory.mktemp("lookout-data")
    previous = os.environ.get("LOOKOUT_DATA_DIR")
    os.environ["LOOKOUT_DATA_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("LOOKOUT_DATA_DIR", None)
    else:
        os.environ["LOOKOUT_DATA_DIR"] = previous


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail any test that leaves a thread of its own running."""
    before = set(threading.enumerate())
    yield

    def leaked():
        return [t for t in threading.enumerate()
                if t not in before and t.is_alive()
                and (not t.daemon or t.name.startswith("lookout"))]

    end = time.monotonic() + 5.0
    while leaked() and time.monotonic() < end:
        time.sleep(0.05)
    remaining = leaked()
    assert not remaining, f"test leaked threads: {[t.name for t in remaining]}"


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory) -> str:
    """A redis-server of the module's own on a free port (nothing else publishes there)."""
    import redis

    from helpers.browser import free_port
    from helpers.support import Process, wait_for

    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    server = Process(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                      "--save", "", "--appendonly", "no", "--dir", str(folder)],
                     folder / "redis.log")
    url = f"redis://127.0.0.1:{port}"
    try:
        wait_for(lambda: redis.Redis.from_url(url, socket_connect_timeout=1).ping(), 20,
                 message="private redis-server up")
        yield url
    finally:
        server.stop()
