"""Lost and stuck tasks, failure groups and alerts with real workers on Redis: `kill -9` a worker mid-task and its
task is flagged lost once the worker has been silent for `lost_after`, and not before; a
slow task on a live worker is never lost; a task open ten times longer than its name's
usual runtime is stuck, and revoking it from the list works. Failure groups from real
failures."""
from __future__ import annotations

import re
import signal
import time
from types import SimpleNamespace

import pytest

from helpers.apps import build_app
from helpers.support import start_worker, wait_for
from helpers.workers import (
    collector_settings,
    task_client,
    unique,
    wait_connected,
    wait_states,
    worker_row,
)
from lookout.collectors.service import Collector
from lookout.core.store.db import make_engine, upgrade

pytestmark = pytest.mark.slow
LOST_AFTER = 6.0


@pytest.fixture(scope="module")
def env(redis_broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trouble")
    url = f"sqlite:///{tmp / 'lookout.db'}"
    upgrade(url)
    engine = make_engine(url)
    settings = collector_settings(redis_broker, url, alert_interval=0.5)
    collector = Collector(settings, engine=engine).start()
    app = build_app(url, broker_url=redis_broker, lost_after=LOST_AFTER, stuck_min=1.0,
                    stuck_factor=10.0)
    queue, hostname = unique("trouble-q"), f"{unique('trouble-w')}@test"
    worker = start_worker(tmp, redis_broker, hostname, queues=queue, concurrency=2)
    try:
        with task_client(redis_broker) as celery:
            wait_connected(engine, settings.collector_name)
            wait_for(lambda: worker_row(engine, hostname), 30, message="worker row")
            yield SimpleNamespace(app=app, client=app.test_client(), engine=engine, tmp=tmp,
                                  broker=redis_broker, celery=celery, queue=queue,
                                  hostname=hostname, worker=worker)
    finally:
        worker.stop()
        collector.stop()
        app.extensions["lookout.engine"].dispose()
        engine.dispose()


def send(env, name, *args, queue=None) -> str:
    task_id = unique(name.replace(".", "-"))
    env.celery.send_task(name, args=args, task_id=task_id, queue=queue or env.queue)
    return task_id


def get(env, path):
    response = env.client.get(path)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_task_open_ten_times_its_usual_runtime_is_stuck_and_revoked_from_the_list(env):
    quick = [send(env, "sample.sleep", 0.2) for _ in range(4)]
    wait_states(env.engine, {i: "SUCCESS" for i in quick})
    slow = send(env, "sample.sleep", 60)
    wait_states(env.engine, {slow: "STARTED"})
    assert slow not in {t["uuid"] for t in get(env, "/api/v1/trouble")["stuck"]}
    stuck = wait_for(lambda: next((t for t in get(env, "/api/v1/trouble")["stuck"]
                                   if t["uuid"] == slow), None), 30, 0.3, "stuck")
    assert "x its p95 runtime" in stuck["stuck"] and stuck["lost"] is None
    assert get(env, f"/api/v1/trouble/tasks/{slow}")["stuck"]
    csrf_page = env.client.get("/trouble").get_data(as_text=True)
    assert 'id="trouble"' in csrf_page
    from helpers.control import csrf_from

    revoked = env.client.post(f"/api/v1/tasks/{slow}/revoke", json={"terminate": True},
                              headers={"X-CSRF-Token": csrf_from(csrf_page)})
    assert revoked.status_code == 200
    wait_states(env.engine, {slow: "REVOKED"})
    assert slow not in {t["uuid"] for t in get(env, "/api/v1/trouble")["stuck"]}


def test_a_killed_workers_task_is_lost_after_the_silence_and_not_before(env):
    hostname = f"{unique('doomed')}@test"
    queue = unique("doomed-q")
    doomed = start_worker(env.tmp, env.broker, hostname, queues=queue, concurrency=1)
    alive_task = send(env, "sample.sleep", 8)  # on the module's live worker
    try:
        wait_for(lambda: worker_row(env.engine, hostname), 30, message="doomed worker row")
        task = send(env, "sample.sleep", 120, queue=queue)
        wait_states(env.engine, {task: "STARTED", alive_task: "STARTED"})
        doomed.signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert get(env, f"/api/v1/tasks/{task}")["lost"] is None  # not before the silence
        lost = wait_for(lambda: get(env, "/api/v1/tasks?lost=true")["items"], 30, 0.2,
                        "the task to be lost")
        waited = time.monotonic() - killed_at
        assert [t["uuid"] for t in lost] == [task]
        assert "has not been heard" in lost[0]["lost"] and hostname in lost[0]["lost"]
        # heartbeats come every 2 s: silence passes LOST_AFTER between 4 and 6 s after
        assert waited >= LOST_AFTER - 2.5
        detail = get(env, f"/api/v1/tasks/{task}")
        assert detail["state"] == "STARTED" and detail["lost"]  # a flag, not a fake state
        listed = get(env, "/api/v1/trouble")
        assert task in {t["uuid"] for t in listed["lost"]}
        assert task not in {t["uuid"] for t in listed["stuck"]}
        # the slow task on the live worker was never lost while it ran
        while get(env, f"/api/v1/tasks/{alive_task}")["state"] == "STARTED":
            assert get(env, f"/api/v1/tasks/{alive_task}")["lost"] is None
            time.sleep(0.5)  # sampling the flag over the task's run, not synchronising
        assert get(env, f"/api/v1/tasks/{alive_task}")["state"] == "SUCCESS"
    finally:
        doomed.stop()
    bad = env.client.get("/api/v1/tasks?lost=maybe")
    assert bad.status_code == 400 and bad.get_json()["error"]["parameter"] == "lost"


def test_failures_differing_only_in_ids_form_one_group(env):
    ids = [send(env, "sample.fail", f"order {n} not found") for n in (48151, 62342, 7)]
    other = send(env, "sample.fail", "payment gateway down")
    wait_states(env.engine, {**{i: "FAILURE" for i in ids}, other: "FAILURE"})
    groups = get(env, "/api/v1/failures?window=1h")["groups"]
    orders = [g for g in groups if g["message"] == "order <n> not found"]
    assert len(orders) == 1 and orders[0]["count"] == 3
    assert orders[0]["exception_type"] == "ValueError"
    assert orders[0]["task_names"] == [{"name": "sample.fail", "count": 3}]
    assert any(g["message"] == "payment gateway down" for g in groups)
    one = get(env, f"/api/v1/failures/{orders[0]['fingerprint']}?window=1h")
    assert set(one["task_ids"]) == set(ids)
    assert env.client.get("/api/v1/failures/nope").status_code == 404
    assert env.client.get("/api/v1/failures?window=forever").status_code == 400


def test_a_failure_rate_alert_fires_once_and_resolves_once(env):
    import json
    import time as clock

    from sqlalchemy import insert

    from helpers.receiver import WebhookReceiver
    from lookout.core.alerting import validate_rule
    from lookout.core.store.models import AlertRule

    with WebhookReceiver() as hook:
        rule = validate_rule({"name": "flaky failing", "kind": "failure_rate",
                              "params": {"task": "sample.flaky", "window": "2m",
                                         "threshold": 0.2, "min_runs": 3},
                              "notify": [hook.url], "cooldown": "1s"})
        with env.engine.begin() as conn:
            conn.execute(insert(AlertRule).values(
                **{**rule, "params": json.dumps(rule["params"]),
                   "notify": json.dumps(rule["notify"])}, updated_at=clock.time()))
        failing = [send(env, "sample.flaky", True) for _ in range(4)]
        wait_states(env.engine, {i: "FAILURE" for i in failing})
        wait_for(lambda: hook.events() == [("firing", "sample.flaky")], 20, 0.2, "firing")
        # The rule fires at min_runs: the last failure may be stored after that round.
        assert re.search(r"\b([34]) of \1 runs failed \(100%\) in the 2 min before this "
                         r"alert fired", hook.received[0]["text"]), hook.received[0]["text"]
        fine = [send(env, "sample.flaky") for _ in range(30)]
        wait_states(env.engine, {i: "SUCCESS" for i in fine})
        wait_for(lambda: len(hook.received) == 2, 20, 0.2, "resolved")
        clock.sleep(1.5)  # three more evaluation rounds: an absence needs time to show
        assert hook.events() == [("firing", "sample.flaky"), ("resolved", "sample.flaky")]


def test_a_task_whose_final_events_were_missed_is_reconciled_from_the_backend(
        redis_broker, tmp_path):
    """The collector is down while a task finishes (Redis keeps no events for it): the
    task stays STARTED until the reconciler reads its real state from the result backend."""
    from celery import Celery

    from lookout.collectors.reconcile import RECONCILER, Reconciler

    url = f"sqlite:///{tmp_path / 'lookout.db'}"
    upgrade(url)
    engine = make_engine(url)
    backend_url = redis_broker  # result keys live beside the broker's in its database
    queue, hostname = unique("rec-q"), f"{unique('rec-w')}@test"
    worker = start_worker(tmp_path, redis_broker, hostname, queues=queue, concurrency=1,
                          env={"LOOKOUT_TEST_BACKEND": backend_url})
    app = Celery("sample_tasks", broker=redis_broker, backend=backend_url,
                 set_as_current=False)
    settings = collector_settings(redis_broker, url)
    settings.extra["celery_app"] = app
    try:
        collector = Collector(settings, engine=engine).start()
        wait_connected(engine, settings.collector_name)
        with task_client(redis_broker) as celery:
            task_id = unique("rec")
            celery.send_task("sample.sleep", args=(3,), task_id=task_id, queue=queue)
            wait_states(engine, {task_id: "STARTED"})
            collector.stop()  # its task-succeeded is published while nobody listens
            wait_for(lambda: app.AsyncResult(task_id).state == "SUCCESS", 30, 0.2,
                     "the backend to hold the result")
        collector = Collector(settings, engine=engine).start()
        assert collector.reconciler is not None
        assert collector.reconciler.stats is collector.stats
        assert wait_states(engine, {task_id: "STARTED"})[task_id]["state"] == "STARTED"
        reconciler = Reconciler(engine, collector.buffer, settings, app, settle=0,
                                stats=collector.stats)
        assert reconciler.run_once() == 1
        row = wait_states(engine, {task_id: "SUCCESS"})[task_id]
        assert row["result"] == "3"
        # Stored but never received: /healthz says where the extra stored event came from.
        snapshot = collector.stats.snapshot()
        assert snapshot["reconciled"] == 1 and snapshot["lifetime"]["reconciled"] == 1
        with engine.connect() as conn:
            from sqlalchemy import select

            from lookout.core.store.models import TaskEvent
            hosts = conn.execute(select(TaskEvent.hostname).where(
                TaskEvent.task_uuid == task_id, TaskEvent.type == "task-succeeded")).all()
        assert [h for (h,) in hosts] == [RECONCILER]
        collector.stop()
    finally:
        worker.stop()
        app.close()
        engine.dispose()


def test_a_running_task_revoked_without_terminate_is_not_reconciled_as_revoked(
        redis_broker, tmp_path):
    """A plain revoke of a running task: the worker running it carries on, but another
    worker, which finds the task PENDING in the backend (Celery records STARTED only with
    task_track_started), writes REVOKED there. Found by a new user: the reconciler then
    turned the running task REVOKED (its Terminate button gone) and counted it twice when it
    succeeded. The backend's REVOKED is only trusted for a task that has not started."""
    from celery import Celery

    from lookout.collectors.reconcile import Reconciler

    url = f"sqlite:///{tmp_path / 'lookout.db'}"
    upgrade(url)
    engine = make_engine(url)
    queue = unique("rev-q")
    env = {"LOOKOUT_TEST_BACKEND": redis_broker}
    runner = start_worker(tmp_path, redis_broker, f"{unique('rev-a')}@test", queues=queue,
                          concurrency=1, env=env)
    other = start_worker(tmp_path, redis_broker, f"{unique('rev-b')}@test",
                         queues=unique("rev-idle"), concurrency=1, env=env)
    app = Celery("sample_tasks", broker=redis_broker, backend=redis_broker,
                 set_as_current=False)
    settings = collector_settings(redis_broker, url)
    settings.extra["celery_app"] = app
    collector = Collector(settings, engine=engine).start()
    try:
        wait_connected(engine, settings.collector_name)
        with task_client(redis_broker) as celery:
            task_id = unique("rev")
            celery.send_task("sample.sleep", args=(20,), task_id=task_id, queue=queue)
            wait_states(engine, {task_id: "STARTED"})
            app.control.revoke(task_id)  # no terminate: it runs on
            wait_for(lambda: app.AsyncResult(task_id).state == "REVOKED", 30, 0.2,
                     "the idle worker to write REVOKED in the backend")
        reconciler = Reconciler(engine, collector.buffer, settings, app, settle=0)
        assert reconciler.run_once() == 0
        assert wait_states(engine, {task_id: "STARTED"})[task_id]["state"] == "STARTED"
    finally:
        collector.stop()
        runner.stop()
        other.stop()
        app.close()
        engine.dispose()
