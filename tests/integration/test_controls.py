"""Controls against a real `celery worker` on Redis, with the real collector recording.

One worker, one collector and one app serve the module (starting them is most of the
cost); each test uses queues and task ids of its own. The shutdown test stops that worker,
so it comes after every test that needs it. Results are checked where they
really show: task states in the history the collector writes, the worker's processes
(psutil) and what `inspect` reports afterwards.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import psutil
import pytest
import redis

from helpers.control import app_with_users, audit_records, login, spy
from helpers.factories import add_task, add_worker
from helpers.support import start_worker, wait_for
from helpers.workers import (
    collector_settings,
    task_client,
    tasks,
    unique,
    wait_connected,
    wait_states,
    worker_row,
)
from lookout.collectors.service import Collector
from lookout.core.inspector import parse_registered
from lookout.core.store.db import make_engine, upgrade
from lookout.core.store.models import QueueSample

pytestmark = pytest.mark.slow
CONCURRENCY = 2  # the module's worker's pool processes


@pytest.fixture(scope="module")
def env(redis_broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("controls")
    url = f"sqlite:///{tmp / 'lookout.db'}"
    upgrade(url)
    queue, hostname = unique("ctl-q"), f"{unique('ctl-w')}@test"
    worker = start_worker(tmp, redis_broker, hostname, queues=queue, concurrency=CONCURRENCY)
    engine = make_engine(url)
    settings = collector_settings(redis_broker, url)
    collector = Collector(settings, engine=engine).start()
    app = app_with_users(url, redis_broker)
    client = app.test_client()
    headers = {"X-CSRF-Token": login(client, "otto")}
    try:
        with task_client(redis_broker) as celery:
            wait_connected(engine, settings.collector_name)
            wait_for(lambda: worker_row(engine, hostname), 30, message="worker row")
            yield SimpleNamespace(app=app, client=client, headers=headers, engine=engine,
                                  worker=worker, hostname=hostname, queue=queue,
                                  celery=celery)
    finally:
        collector.stop()
        worker.stop()
        app.extensions["lookout.engine"].dispose()
        engine.dispose()


def post(env, path, body=None):
    return env.client.post(f"/api/v1{path}", json=body or {}, headers=env.headers)


def send(env, name, *args, queue=None, **kwargs) -> str:
    task_id = unique(name.replace(".", "-"))
    env.celery.send_task(name, args=args, kwargs=kwargs, task_id=task_id,
                         queue=queue or env.queue)
    return task_id


def inspect(env, command, *args):
    reply = getattr(env.celery.control.inspect([env.hostname], timeout=2.0), command)(*args)
    return (reply or {}).get(env.hostname)


def queues_consumed(env) -> set[str]:
    return {q["name"] for q in inspect(env, "active_queues") or []}


def wait_known(env, *task_ids):
    """The collector has recorded the task (from its task-sent event)."""
    wait_for(lambda: len(tasks(env.engine, task_ids)) == len(task_ids), 60,
             message=f"history rows for {task_ids}")


def test_terminate_running_task(env):
    task_id = send(env, "sample.sleep", 120)
    # Running is what the worker says; the history only has to know the task (its
    # task-sent event), so a collector lagging behind a busy broker does not matter here.
    active = wait_for(lambda: [t for t in inspect(env, "active") or [] if t["id"] == task_id],
                      30, message="task in inspect active")
    wait_known(env, task_id)
    child = psutil.Process(active[0]["worker_pid"])

    response = post(env, f"/tasks/{task_id}/revoke", {"terminate": True, "signal": "SIGKILL"})

    assert response.status_code == 200, response.get_json()
    # Revokes go to every worker (other modules' workers share this broker and answer too).
    replies = {r["worker"]: r for r in response.get_json()["replies"]}
    assert replies[env.hostname]["ok"]
    assert replies[env.hostname]["reply"] == {"ok": f"terminate: {task_id}"}
    row = wait_states(env.engine, {task_id: "REVOKED"}, timeout=90)[task_id]
    assert row["revoked_at"] is not None
    wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 10,
             message="the task's pool process is gone")
    [record] = audit_records(env.app, action="task.revoke", target=task_id)
    assert (record["actor"], record["role"], record["outcome"], record["status"]) == \
        ("otto", "operator", "ok", 200)
    assert record["remote_addr"] == "127.0.0.1"
    assert record["targets"] == [task_id]
    assert record["parameters"] == {"terminate": True, "signal": "SIGKILL"}
    assert env.hostname in [r["worker"] for r in record["replies"]]


def test_revoked_queued_task_never_runs_and_consumers_change(env):
    other_queue = unique("ctl-later")
    task_id = send(env, "sample.add", 1, 2, queue=other_queue)
    wait_known(env, task_id)

    revoke = post(env, f"/tasks/{task_id}/revoke")
    assert revoke.status_code == 200, revoke.get_json()
    # No worker has the task yet, so none says it is revoked: the history says it was asked.
    pending = env.client.get(f"/api/v1/tasks/{task_id}").get_json()
    assert (pending["state"], pending["revoke_pending"]) == ("PENDING", True)
    added = post(env, f"/workers/{env.hostname}/consumers/add", {"queue": other_queue})
    assert added.status_code == 200 and added.get_json()["replies"][0]["ok"]
    wait_for(lambda: other_queue in queues_consumed(env), 10, message="queue consumed")

    row = wait_states(env.engine, {task_id: "REVOKED"}, timeout=60)[task_id]
    assert row["started_at"] is None and row["succeeded_at"] is None
    assert env.client.get(f"/api/v1/tasks/{task_id}").get_json()["revoke_pending"] is False

    cancelled = post(env, f"/workers/{env.hostname}/consumers/cancel", {"queue": other_queue})
    assert cancelled.status_code == 200
    wait_for(lambda: other_queue not in queues_consumed(env), 10, message="queue dropped")
    assert env.queue in queues_consumed(env)
    for action in ("worker.add_consumer", "worker.cancel_consumer"):
        [record] = audit_records(env.app, action=action, target=env.hostname)
        assert record["parameters"] == {"queue": other_queue} and record["outcome"] == "ok"


def test_bulk_revoke_dry_run_then_act(env):
    held = unique("ctl-bulk")
    matching = [send(env, "sample.add", i, i, queue=held) for i in range(5)]
    others = [send(env, "sample.echo", i, queue=held) for i in range(2)]
    wait_known(env, *matching, *others)
    control = env.app.extensions["lookout.control"]
    control.batch_size, control.batch_pause = 2, 0.05  # three throttled batches
    body = {"filters": {"name": "sample.add", "queue": held, "state": ["PENDING"]}}

    dry = post(env, "/tasks/revoke", body)
    assert dry.status_code == 200 and dry.get_json()["dry_run"] is True
    assert dry.get_json()["count"] == 5
    assert {t["uuid"] for t in dry.get_json()["sample"]} == set(matching)
    sent_before = len(spy(env.app).calls)

    stale = post(env, "/tasks/revoke", {**body, "dry_run": False, "expected_count": 4})
    assert stale.status_code == 409 and len(spy(env.app).calls) == sent_before
    act = post(env, "/tasks/revoke", {**body, "dry_run": False, "expected_count": 5})
    assert act.status_code == 202, act.get_json()
    record_id = act.get_json()["audit_id"]
    record = wait_for(lambda: (r := env.client.get(f"/api/v1/audit/{record_id}").get_json())
                      ["outcome"] != "running" and r, 20, message="bulk revoke finished")
    assert record["outcome"] == "ok" and record["parameters"]["progress"] == {"done": 5,
                                                                              "total": 5}
    assert sorted(record["targets"]) == sorted(matching)
    batches = spy(env.app).calls[sent_before:]
    assert [len(args["task_id"]) for _, args, _ in batches] == [2, 2, 1]

    assert post(env, f"/workers/{env.hostname}/consumers/add", {"queue": held}).status_code == 200
    try:
        wait_states(env.engine, {**{t: "REVOKED" for t in matching},
                                 **{t: "SUCCESS" for t in others}}, timeout=60)
    finally:
        post(env, f"/workers/{env.hostname}/consumers/cancel", {"queue": held})
    # One record per attempt (the stale one refused, the real one), none for the dry run.
    assert [(r["outcome"], r["status"]) for r in audit_records(env.app, action="tasks.revoke")
            ] == [("ok", 200), ("invalid", 409)]


def test_rate_and_time_limits_show_in_inspect(env):
    wait_states(env.engine, {send(env, "sample.add", 1, 1): "SUCCESS",
                             send(env, "sample.sleep", 0.01): "SUCCESS"}, timeout=60)

    def limits(name):
        found = [t for t in parse_registered(inspect(env, "registered", "rate_limit",
                                                     "time_limit", "soft_time_limit"))
                 if t["name"] == name]
        return found[0] if found else {}

    rate = post(env, "/rate-limits", {"task_name": "sample.add", "rate_limit": "7/m",
                                      "destination": [env.hostname]})
    assert rate.status_code == 200 and rate.get_json()["replies"][0]["ok"], rate.get_json()
    times = post(env, "/time-limits", {"task_name": "sample.sleep", "soft": 20, "hard": 25,
                                       "destination": [env.hostname]})
    assert times.status_code == 200 and times.get_json()["replies"][0]["ok"]
    try:
        assert limits("sample.add").get("rate_limit") == "7/m"
        assert limits("sample.sleep").get("time_limit") == "25.0"
        assert limits("sample.sleep").get("soft_time_limit") == "20.0"
        # What the Controls page shows: every answering worker's limits in force.
        current = env.client.get("/api/v1/limits").get_json()
        assert env.hostname in current["workers"]
        ours = {t["name"]: t for t in current["limits"] if t["worker"] == env.hostname}
        assert ours["sample.add"]["rate_limit"] == "7/m"
        assert (ours["sample.sleep"]["soft_time_limit"], ours["sample.sleep"]["time_limit"]) \
            == ("20.0", "25.0")
    finally:
        post(env, "/rate-limits", {"task_name": "sample.add", "rate_limit": None,
                                   "destination": [env.hostname]})
        post(env, "/time-limits", {"task_name": "sample.sleep", "destination": [env.hostname]})
    assert limits("sample.add").get("rate_limit") is None
    assert not [t for t in env.client.get("/api/v1/limits").get_json()["limits"]
                if t["worker"] == env.hostname and t["name"] == "sample.add"]
    set_then_cleared = audit_records(env.app, action="rate_limit", target=env.hostname)
    assert [r["parameters"]["rate_limit"] for r in set_then_cleared] == [None, "7/m"]


def test_pool_grow_and_shrink_change_the_process_count(env):
    main = psutil.Process(env.worker.pid)

    def pool_size():
        return len([c for c in main.children() if c.status() != psutil.STATUS_ZOMBIE])

    # The worker's --concurrency: a terminate in another test kills a child, and the pool
    # replaces it a moment later, so counting whatever is there now could start at 1.
    start = CONCURRENCY
    wait_for(lambda: pool_size() == start, 30, message=f"the pool back at {start} processes")
    assert post(env, f"/workers/{env.hostname}/pool/grow", {"n": 2}).status_code == 200
    wait_for(lambda: pool_size() == start + 2, 15, message=f"{start + 2} pool processes")
    assert post(env, f"/workers/{env.hostname}/pool/shrink", {"n": 2}).status_code == 200
    wait_for(lambda: pool_size() == start, 15, message=f"{start} pool processes")
    [record] = audit_records(env.app, action="worker.pool_grow", target=env.hostname)
    assert record["parameters"] == {"n": 2} and record["replies"][0]["ok"]
    # a worker that refuses says so, and the audit record says what it answered
    # (autoscale on a worker started without --autoscale: refused, and nothing changes)
    refused = post(env, f"/workers/{env.hostname}/pool/autoscale", {"max": 4, "min": 1})
    assert refused.status_code == 200 and not refused.get_json()["replies"][0]["ok"]
    [last] = audit_records(env.app, action="worker.autoscale", target=env.hostname,
                           outcome="failed")
    assert last["message"] == "1 of 1 workers did not do it"


def test_retry_a_failed_task_runs_it_again_with_its_arguments(env):
    failed = send(env, "sample.fail", "retry me")
    wait_states(env.engine, {failed: "FAILURE"})
    retried = post(env, f"/tasks/{failed}/retry")
    assert retried.status_code == 200, retried.get_json()
    new_id = retried.get_json()["task_id"]
    row = wait_states(env.engine, {new_id: "FAILURE"})[new_id]
    original = tasks(env.engine, [failed])[failed]
    assert (row["name"], row["args"], row["kwargs"]) == \
        (original["name"], original["args"], original["kwargs"])
    assert "retry me" in row["exception"]
    client = env.client
    assert client.get(f"/api/v1/tasks/{new_id}").get_json()["retry_of"] == failed
    assert [r["task_uuid"] for r in client.get(f"/api/v1/tasks/{failed}").get_json()[
        "retried_as"]] == [new_id]
    [record] = audit_records(env.app, action="task.retry", target=failed)
    assert record["outcome"] == "ok" and record["replies"] == {"task_id": new_id}
    again = post(env, f"/tasks/{failed}/retry")  # a second press: refused, not run twice
    assert again.status_code == 409
    assert f"already sent again from Lookout as {new_id}" in again.get_json()["error"][
        "message"]


def test_a_retry_into_a_queue_without_consumers_says_so(env, redis_broker):
    """An on-call trial retried into a queue whose workers were gone and saw only "sent"."""
    orphan = unique("orphan-q")
    # A name of its own: the bulk retry test below retries every failed sample.fail.
    row = add_task(env.engine, uuid=unique("orphaned"), state="FAILURE", name="sample.orphan",
                   args="('again',)", kwargs="{}", queue=orphan, timestamp=time.time())
    with env.engine.begin() as conn:  # what the collector's queue sampler records
        conn.execute(QueueSample.__table__.insert(), [
            {"queue": orphan, "timestamp": time.time(), "messages": 7, "consumers": 0}])
    dry = post(env, "/tasks/retry", {"filters": {"queue": orphan}}).get_json()
    retried = post(env, f"/tasks/{row['uuid']}/retry")
    assert retried.status_code == 200, retried.get_json()
    for warnings in (dry["warnings"], retried.get_json()["warnings"]):
        [warning] = warnings
        assert f"queue {orphan!r} had no consumer" in warning and "7 messages" in warning
    client = redis.Redis.from_url(redis_broker)
    try:
        assert client.llen(orphan) == 1  # sent all the same, and waiting there
    finally:
        client.delete(orphan)
        client.close()
    # The module's worker consumes its queue: no warning.
    consumed = send(env, "sample.fail", "consumed")
    wait_states(env.engine, {consumed: "FAILURE"})
    assert post(env, f"/tasks/{consumed}/retry").get_json()["warnings"] == []


def test_retry_is_refused_when_the_arguments_cannot_be_rebuilt(env):
    long_arg = send(env, "sample.echo", "x" * 3000)  # Celery's repr cuts it at 1024
    wait_states(env.engine, {long_arg: "SUCCESS"})
    refused = post(env, f"/tasks/{long_arg}/retry")
    assert refused.status_code == 409
    assert "1024-character" in refused.get_json()["error"]["message"]
    running = send(env, "sample.sleep", 120)
    wait_states(env.engine, {running: "STARTED"})
    busy = post(env, f"/tasks/{running}/retry")
    assert busy.status_code == 409 and "only finished or lost tasks" in busy.get_json()["error"][
        "message"]
    post(env, f"/tasks/{running}/revoke", {"terminate": True})
    assert post(env, "/tasks/nope-nope/retry").status_code == 404
    viewer = env.app.test_client()
    csrf = login(viewer, "vic")
    denied = viewer.post(f"/api/v1/tasks/{long_arg}/retry", headers={"X-CSRF-Token": csrf})
    assert denied.status_code == 403
    assert [r["outcome"] for r in audit_records(env.app, action="task.retry",
                                                target=long_arg)] == ["refused", "invalid"]


def test_bulk_retry_dry_run_then_act(env):
    ids = [send(env, "sample.fail", f"bulk {i}") for i in range(3)]
    odd = send(env, "sample.fail", "y" * 3000)  # cannot be rebuilt
    wait_states(env.engine, {i: "FAILURE" for i in [*ids, odd]})
    filters = {"name": "sample.fail"}
    dry = post(env, "/tasks/retry", {"filters": filters})
    assert dry.status_code == 200, dry.get_json()
    plan = dry.get_json()
    assert plan["dry_run"] is True and plan["refused_count"] >= 1
    assert odd in {r["uuid"] for r in plan["refused"]}
    acted = post(env, "/tasks/retry", {"filters": filters, "dry_run": False,
                                       "expected_count": plan["retriable"]})
    assert acted.status_code == 200, acted.get_json()
    sent = acted.get_json()["sent"]
    assert acted.get_json()["count"] == plan["retriable"] >= 3
    assert {s["retry_of"] for s in sent} >= set(ids) and odd not in {s["retry_of"]
                                                                   for s in sent}
    wait_states(env.engine, {s["task_id"]: "FAILURE" for s in sent})
    stale = post(env, "/tasks/retry", {"filters": filters, "dry_run": False,
                                       "expected_count": 1})
    assert stale.status_code == 409


def test_a_failure_group_is_retried_alone_and_never_twice(env):
    """A trial's bulk retry by task name re-sent a payment task's unrelated failures with
    the group it meant; the Failures page now retries one group."""
    declined = [send(env, "sample.fail", f"card declined for order {n}") for n in range(3)]
    timeout = send(env, "sample.fail", "gateway timeout for order 9")
    wait_states(env.engine, {i: "FAILURE" for i in [*declined, timeout]})
    groups = env.client.get("/api/v1/failures?window=1h").get_json()["groups"]
    [group] = [g for g in groups if g["message"] == "card declined for order <n>"]
    selection = {"failure_group": {"fingerprint": group["fingerprint"], "window": "1h"}}
    dry = post(env, "/tasks/retry", selection)
    assert dry.status_code == 200, dry.get_json()
    assert (dry.get_json()["count"], dry.get_json()["retriable"]) == (3, 3)
    acted = post(env, "/tasks/retry", {**selection, "dry_run": False, "expected_count": 3})
    assert acted.status_code == 200, acted.get_json()
    assert sorted(s["retry_of"] for s in acted.get_json()["sent"]) == sorted(declined)
    wait_states(env.engine, {s["task_id"]: "FAILURE" for s in acted.get_json()["sent"]})
    # Again: the three originals were sent already (their retries failed and are new
    # members of the group, retriable in their turn).
    again = post(env, "/tasks/retry", selection).get_json()
    skipped = {r["uuid"]: r["reason"] for r in again["refused"]}
    assert set(declined) <= set(skipped) and timeout not in skipped
    assert all(skipped[i].startswith("already sent again from Lookout (as ") for i in declined)
    assert again["retriable"] == 3  # the retries, failed again
    [record] = audit_records(env.app, action="tasks.retry", outcome="ok")[:1]
    assert record["parameters"]["failure_group"]["fingerprint"] == group["fingerprint"]


def test_shutdown_stops_the_worker(env, tmp_path):
    hostname = f"{unique('ctl-doomed')}@test"
    doomed = start_worker(tmp_path, env.celery.conf.broker_url, hostname,
                          queues=unique("ctl-d"), concurrency=1)
    try:
        wait_for(lambda: worker_row(env.engine, hostname), 20, message="worker row")
        response = post(env, f"/workers/{hostname}/shutdown")
        assert response.status_code == 200
        wait_for(lambda: doomed.popen.poll() is not None, 20, message="worker exited")
    finally:
        doomed.stop()


def test_unreachable_broker_is_503(sqlite_url):
    app = app_with_users(sqlite_url, "redis://127.0.0.1:1/0")
    engine = app.extensions["lookout.engine"]
    add_worker(engine, "celery@w1")
    add_task(engine, name="sample.add", state="RECEIVED")
    client = app.test_client()
    headers = {"X-CSRF-Token": login(client, "otto")}
    response = client.post("/api/v1/rate-limits", json={"task_name": "sample.add",
                                                        "rate_limit": "1/s"}, headers=headers)
    assert response.status_code == 503
    assert "unreachable" in response.get_json()["error"]["message"]
    [record] = audit_records(app, action="rate_limit")
    assert (record["outcome"], record["status"]) == ("error", 503)
    engine.dispose()
