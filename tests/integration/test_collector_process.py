"""The `lookout collect` process under signals: kill -9 keeps the store intact and a restart
resumes; SIGTERM writes everything it holds and exits 0.
"""
from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import func, select, text

from helpers.support import VENV_BIN, Process, wait_for
from helpers.workers import (
    collector_env,
    collector_settings,
    send,
    status,
    task_client,
    tasks,
    wait_states,
)
from lookout.core.store.db import make_engine
from lookout.core.store.models import TaskEvent
from lookout.dashboard.health.service import HealthCheck

pytestmark = pytest.mark.slow

BURST = 150


def start_collector(tmp_path, settings, label: str, after: float = 0.0,
                    args: list[str] | None = None, env: dict[str, str] | None = None) -> Process:
    """`lookout collect` as a subprocess; returns once its own status row says connected."""
    args = args or [str(VENV_BIN / "lookout"), "collect", "--broker", settings.broker_url,
                    "--database", settings.database_url]
    proc = Process(args,
                   tmp_path / f"collect-{label}.log", env=env or collector_env(settings))
    engine = make_engine(settings.database_url)
    try:
        def connected():
            if proc.popen.poll() is not None:
                raise AssertionError(f"collector exited early:\n{proc.output()[-3000:]}")
            row = status(engine, settings.collector_name)
            return row and row["connected"] and row["started_at"] > after
        wait_for(connected, 60, interval=0.2, message=f"collector {label} connected")
    finally:
        engine.dispose()
    return proc


def integrity(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("PRAGMA integrity_check")).scalar()


def count_stored(engine, ids) -> int:
    return sum(1 for row in tasks(engine, ids).values() if row["state"] == "SUCCESS")


def test_kill_9_keeps_history_and_a_restart_resumes(tmp_path, redis_worker, sqlite_url):
    settings = collector_settings(redis_worker.broker, sqlite_url)
    engine = make_engine(sqlite_url)
    procs = []
    try:
        procs.append(start_collector(tmp_path, settings, "first"))
        first_started = status(engine, settings.collector_name)["started_at"]
        with task_client(redis_worker.broker) as app:
            burst = [send(app, redis_worker, "sample.add", i, i) for i in range(BURST)]
            wait_for(lambda: count_stored(engine, burst) >= 20, 60, interval=0.05,
                     message="some of the burst stored")
            procs[0].kill()
            assert procs[0].popen.returncode == -signal.SIGKILL
            # A killed collector did not stop on request: its stale row is a problem.
            later = HealthCheck(engine, clock=lambda: time.time() + 60).check()
            [mine] = [c for c in later["collectors"] if c["name"] == settings.collector_name]
            assert not mine["stopped"] and mine["problem"].startswith("status not updated")

            assert integrity(engine) == "ok"
            before = tasks(engine, burst)
            with engine.connect() as conn:
                events_before = conn.execute(select(func.count()).select_from(TaskEvent)
                                             .where(TaskEvent.task_uuid.in_(burst))).scalar()
            assert before

            procs.append(start_collector(tmp_path, settings, "second", after=first_started))
            resumed = [send(app, redis_worker, "sample.add", i, 1) for i in range(10)]
            wait_states(engine, {task_id: "SUCCESS" for task_id in resumed})

        assert integrity(engine) == "ok"
        after = tasks(engine, burst)
        assert set(before) <= set(after)
        for task_id, row in before.items():
            if row["state"] == "SUCCESS":  # finished rows never change
                assert after[task_id] == row
        with engine.connect() as conn:
            events_after = conn.execute(select(func.count()).select_from(TaskEvent)
                                        .where(TaskEvent.task_uuid.in_(burst))).scalar()
        assert events_after >= events_before
    finally:
        for proc in procs:
            proc.stop()
        engine.dispose()


def test_sigterm_flushes_and_exits_0(tmp_path, redis_worker, sqlite_url):
    settings = collector_settings(redis_worker.broker, sqlite_url)
    engine = make_engine(sqlite_url)
    proc = start_collector(tmp_path, settings, "sigterm")
    try:
        with task_client(redis_worker.broker) as app:
            burst = [send(app, redis_worker, "sample.add", i, i) for i in range(BURST)]
            wait_for(lambda: count_stored(engine, burst) >= 10, 60, interval=0.05,
                     message="some of the burst stored")
        proc.signal(signal.SIGTERM)
        assert proc.popen.wait(30) == 0, proc.output()[-3000:]
        assert "SIGTERM received" in proc.output()

        final = status(engine, settings.collector_name)
        assert final["connected"] is False
        counters = final["stats"]
        assert counters["buffer_pending"] == 0
        assert counters["dropped"] == 0
        assert counters["received"] > 0
        # Everything received was written (or recognised as already written).
        assert counters["stored"] + counters["duplicates"] == counters["received"]
        assert integrity(engine) == "ok"
        # Stopped on request: once its row is stale, /healthz lists it as stopped, not
        # down (no cleanup when a deployment moves to other collectors).
        later = HealthCheck(engine, clock=lambda: time.time() + 60).check()
        [mine] = [c for c in later["collectors"] if c["name"] == settings.collector_name]
        assert (mine["stopped"], mine["up"], mine["problem"]) == (True, False, None)
    finally:
        proc.stop()
        engine.dispose()


def test_celery_subcommand_takes_broker_and_app_from_dash_a(tmp_path, redis_worker, sqlite_url):
    """`celery -A proj lookout collect`: no broker option, the app's own configuration."""
    settings = collector_settings(redis_worker.broker, sqlite_url)
    env = {"LOOKOUT_TEST_BROKER": redis_worker.broker, "LOOKOUT_BROKER_URL": "",
           "LOOKOUT_DATABASE_URL": sqlite_url, "LOOKOUT_COLLECTOR_NAME": settings.collector_name}
    proc = start_collector(tmp_path, settings, "dash-a", env=env, args=[
        str(VENV_BIN / "celery"), "-A", "helpers.sample_tasks", "lookout", "collect"])
    engine = make_engine(sqlite_url)
    try:
        with task_client(redis_worker.broker) as app:
            task_id = send(app, redis_worker, "sample.echo", "via -A")
            wait_states(engine, {task_id: "SUCCESS"})
        assert status(engine, settings.collector_name)["broker"] == redis_worker.broker
        proc.signal(signal.SIGTERM)
        assert proc.popen.wait(30) == 0, proc.output()[-3000:]
    finally:
        proc.stop()
        engine.dispose()


def test_a_redis_pair_loses_nothing_when_one_is_killed_and_restarted(tmp_path, redis_worker,
                                                                      pg_database_url):
    """Two collectors on one broker and one PostgreSQL store: while one is down (kill -9,
    then a restart), the other hears everything; rows and rollups come out exact."""
    pair = [collector_settings(redis_worker.broker, pg_database_url, collector_name=name)
            for name in (f"pair-a-{tmp_path.name}", f"pair-b-{tmp_path.name}")]
    engine = make_engine(pg_database_url)
    procs = []

    def succeeded_rollup() -> int:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT coalesce(sum(succeeded), 0) FROM task_rollups "
                                    "WHERE name = 'sample.add'"))

    try:
        before = succeeded_rollup()
        procs = [start_collector(tmp_path, settings, settings.collector_name[:6])
                 for settings in pair]
        with task_client(redis_worker.broker) as app:
            sent = [send(app, redis_worker, "sample.add", i, 1) for i in range(BURST)]
            wait_for(lambda: count_stored(engine, sent) >= 20, 60, interval=0.05,
                     message="some of the burst stored")
            procs[0].kill()  # mid-stream
            sent += [send(app, redis_worker, "sample.add", i, 2) for i in range(BURST)]
            first_started = status(engine, pair[0].collector_name)["started_at"]
            procs.append(start_collector(tmp_path, pair[0], "a-again", after=first_started))
            sent += [send(app, redis_worker, "sample.add", i, 3) for i in range(50)]
            wait_states(engine, {task_id: "SUCCESS" for task_id in sent}, timeout=90)
        rows = tasks(engine, sent)
        assert all(row["runtime"] is not None and row["received_at"] for row in rows.values())
        with engine.connect() as conn:
            per_task = conn.execute(select(TaskEvent.task_uuid, func.count())
                                    .where(TaskEvent.task_uuid.in_(sent))
                                    .group_by(TaskEvent.task_uuid)).all()
        # sent, received, started, succeeded: each once, whichever collector stored it
        assert len(per_task) == len(sent)
        assert sorted({count for _uuid, count in per_task}) == [4]
        wait_for(lambda: succeeded_rollup() - before == len(sent), 30, interval=0.2,
                 message="rollups count every task once")
    finally:
        for proc in procs:
            proc.stop()
        engine.dispose()


def test_a_second_collector_of_the_same_name_is_one_line_and_a_named_one_runs(
        redis_broker, tmp_path):
    """`lookout collect` twice on one machine (the README's "one or more"): the second of
    the same name is refused in one line naming the fix, not a 40-line traceback; with
    `--name` it runs beside the first."""
    settings = collector_settings(redis_broker, f"sqlite:///{tmp_path / 'pair.db'}")
    first = start_collector(tmp_path, settings, "first")
    lookout = str(VENV_BIN / "lookout")
    command = [lookout, "collect", "--broker", redis_broker, "--database",
               settings.database_url]
    env = collector_env(settings)
    twin = Process(command, tmp_path / "collect-twin.log", env=env)
    named = bare = None
    try:
        wait_for(lambda: twin.popen.poll() is not None, 60, message="the twin refused")
        assert twin.popen.returncode == 1
        assert "Traceback" not in twin.output()
        (error,) = [line for line in twin.output().splitlines() if line.startswith("Error:")]
        assert "in use by another collector" in error and "--name" in error
        # Without a spill file (no lock to meet) and with a data folder of its own: the
        # two passed the live push between them every few seconds (a trial).
        bare = Process(command, tmp_path / "collect-bare-twin.log",
                       env={**env, "LOOKOUT_BACKLOG_MEMORY": "0",
                            "LOOKOUT_DATA_DIR": str(tmp_path / "elsewhere")})
        wait_for(lambda: bare.popen.poll() is not None, 60, message="the bare twin refused")
        assert bare.popen.returncode == 1 and "Traceback" not in bare.output()
        (error,) = [line for line in bare.output().splitlines() if line.startswith("Error:")]
        assert f"collector name {settings.collector_name!r} is in use by another collector " \
               f"on this machine (process {first.popen.pid})" in error, error
        named = Process([*command, "--name", "second"], tmp_path / "collect-named.log",
                        env=env)
        engine = make_engine(settings.database_url)
        try:
            wait_for(lambda: (status(engine, "second") or {}).get("connected"), 60,
                     message="the collector named second connected")
        finally:
            engine.dispose()
        assert named.popen.poll() is None and first.popen.poll() is None
    finally:
        for process in (twin, bare, named, first):
            if process is not None:
                process.stop()
