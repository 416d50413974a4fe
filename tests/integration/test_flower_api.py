"""The Flower-compatible API against Flower itself: same broker, same worker, same tasks.

A redis-server of the module's own carries one real worker (helpers/flower_tasks.py: a
result backend and an abortable task), a real Flower 2.x (`celery flower`) and a real
`lookout run` with authentication on. Each test sends its own tasks and asks both the
same questions: the answers must have the same keys, the same value types and, where
both read the same events, the same values. The differences kept on purpose are listed
in docs/api.md; those these tests meet are named where they are allowed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pytest

from helpers.browser import free_port
from helpers.flower_script import call as api  # (status, JSON or text) of one request
from helpers.support import ROOT, TESTS, VENV_BIN, Process, wait_for
from helpers.workers import unique

pytestmark = pytest.mark.slow
SCRIPT = TESTS / "helpers" / "flower_script.py"


@dataclass
class Stack:
    flower: str
    lookout: str
    token: str  # an operator's
    viewer: str
    hostname: str
    queue: str
    env: dict[str, str]
    processes: dict[str, Process]


def both(stack: Stack, method: str, path: str, **kwargs) -> tuple[tuple, tuple]:
    """The same request to Flower and to Lookout (with the operator's token)."""
    return (api(stack.flower, method, path, **kwargs),
            api(stack.lookout, method, path, token=stack.token, **kwargs))


def message(answer: Any) -> str:
    """Flower's message, in its JSON, its plain-text error, or Lookout's JSON error."""
    if isinstance(answer, dict):
        return answer.get("message") or answer.get("error", {}).get("message")
    return answer


def types_of(value: Any) -> Any:
    """A value's shape: dict keys with their shapes, else the type name (None as such)."""
    if isinstance(value, dict):
        return {key: types_of(item) for key, item in value.items()}
    return type(value).__name__


def cli(*args: str) -> str:
    done = subprocess.run([str(VENV_BIN / "lookout"), *args], capture_output=True, text=True,
                          check=True, cwd=ROOT, timeout=60)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def stack(private_redis, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flower-api")
    broker, store = f"{private_redis}/0", f"sqlite:///{tmp / 'lookout.db'}"
    env = {"LOOKOUT_TEST_BROKER": broker, "LOOKOUT_TEST_BACKEND": f"{private_redis}/1"}
    hostname, queue = f"{unique('flower-w')}@test", unique("flower-q")
    token = cli("users", "token", "flower-script", "--role", "operator", "--database", store)
    viewer = cli("users", "token", "flower-viewer", "--role", "viewer", "--database", store)
    processes: dict[str, Process] = {}
    celery = [str(VENV_BIN / "celery"), "-A", "helpers.flower_tasks"]
    try:
        processes["worker"] = worker = Process(
            [*celery, "worker", "-E", "-n", hostname, "-Q", f"celery,{queue}", "-c", "2",
             "-l", "INFO", "--without-gossip", "--without-mingle"], tmp / "worker.log", env)
        worker.wait_output("ready.", timeout=60)
        flower_port, lookout_port = free_port(), free_port()
        processes["flower"] = Process(
            [*celery, "--broker", broker, "flower", f"--port={flower_port}",
             "--address=127.0.0.1"], tmp / "flower.log",
            {**env, "FLOWER_UNAUTHENTICATED_API": "true"})
        processes["lookout"] = Process(
            [str(VENV_BIN / "lookout"), "run", "-A", "helpers.flower_tasks", "--broker", broker,
             "--database", store, "--port", str(lookout_port)], tmp / "lookout.log",
            {**env, "LOOKOUT_SECRET_KEY": "flower-tests",
             "LOOKOUT_COLLECTOR_NAME": unique("flower")})
        stack = Stack(f"http://127.0.0.1:{flower_port}", f"http://127.0.0.1:{lookout_port}",
                      token, viewer, hostname, queue, env, processes)
        wait_for(lambda: api(stack.flower, "GET", "/healthcheck")[0] == 200, 60,
                 message="flower up")
        wait_for(lambda: api(stack.lookout, "GET", "/healthz")[0] == 200, 60,
                 message="lookout up")
        # Both must know the worker (Flower from its start-up inspect, Lookout from events).
        wait_for(lambda: hostname in api(stack.flower, "GET", "/api/workers")[1], 30,
                 message="flower knows the worker")
        wait_for(lambda: api(stack.lookout, "GET", "/api/workers?status=1",
                             token=token)[1].get(hostname), 30, message="lookout knows it")
        yield stack
    finally:
        for process in reversed(list(processes.values())):
            process.stop()


def send(stack: Stack, name: str, *args: Any, options: dict | None = None,
         **kwargs: Any) -> str:
    """Send through Lookout's own API (async-apply) and return the task id."""
    status, body = api(stack.lookout, "POST", f"/api/task/async-apply/{name}",
                       {"args": list(args), "kwargs": kwargs, "queue": stack.queue,
                        **(options or {})}, token=stack.token)
    assert status == 200, body
    return body["task-id"]


def late_sent_undone(stack: Stack, task_id: str, flower: dict) -> dict:
    """Flower's task with the clock and timestamp of the event that set its state, where
    a late task-sent had replaced them.

    The client publishes task-sent after the task message, so on a busy machine the
    worker's events can reach the subscribers first. Celery's State then merges every
    field of that PENDING event (its state comes first and has no merge rule), so Flower
    shows the task-sent's timestamp, and a clock Celery's receiver made up for it (its own
    clock minus one, as clients' clocks are not synced): Flower's answer depends on arrival
    order. Lookout shows the state-setting event's (docs/api.md). Only that case is put
    back: Flower's timestamp must be the task-sent's own, as Lookout's timeline recorded it.
    """
    status, task = api(stack.lookout, "GET", f"/api/v1/tasks/{task_id}", token=stack.token)
    if status != 200 or flower.get("state") == "PENDING":
        return flower
    sent = [event for event in task["timeline"] if event["type"] == "task-sent"]
    setter = [event for event in task["timeline"]
              if event["type"] != "task-sent" and event["timestamp"] == task["state_ts"]]
    if sent and setter and flower["timestamp"] == sent[0]["timestamp"]:
        return {**flower, "clock": setter[-1]["clock"], "timestamp": setter[-1]["timestamp"]}
    return flower


def settled(stack: Stack, task_id: str, state: str) -> tuple[dict, dict]:
    """Wait until Flower and Lookout both show the task in `state`; both answers."""
    def seen():
        (fs, flower), (ls, lookout) = both(stack, "GET", f"/api/task/info/{task_id}")
        if fs == 200:
            flower = late_sent_undone(stack, task_id, flower)
        done = fs == ls == 200 and flower["state"] == lookout["state"] == state
        # The last event (and so the clock) can reach one of them a moment later.
        return (flower, lookout) if done and flower["clock"] == lookout["clock"] else None
    return wait_for(seen, 60, interval=0.2, message=f"{task_id} {state} in both")


# -- reads ---------------------------------------------------------------------------------
def test_task_info_is_flowers_to_the_value(stack):
    # Lookout keeps eta and expires as epoch seconds; Flower shows the events' text.
    eta = send(stack, "flower.add", 1, 1, options={"countdown": 0.3, "expires": 600})
    ids = {send(stack, "flower.add", 2, 3): "SUCCESS",
           send(stack, "flower.fail", "no luck"): "FAILURE",
           send(stack, "flower.echo", "a", key="value", n=3): "SUCCESS", eta: "SUCCESS"}
    for task_id, state in ids.items():
        flower, lookout = settled(stack, task_id, state)
        assert list(lookout) == list(flower)  # the same keys, in the same order
        assert lookout == flower
        if task_id == eta:
            assert isinstance(lookout["eta"], str) and isinstance(lookout["expires"], str)
    status, body = api(stack.lookout, "GET", "/api/task/info/no-such-task", token=stack.token)
    assert status == 404 and api(stack.flower, "GET", "/api/task/info/no-such-task")[0] == 404


def test_task_lists_filter_sort_and_search_like_flower(stack):
    marker = unique("m")
    ids = [send(stack, "flower.echo", marker, i) for i in range(4)]
    ids.append(send(stack, "flower.fail", marker))
    for task_id in ids:
        settled(stack, task_id, "FAILURE" if task_id == ids[-1] else "SUCCESS")
    queries = [
        {"taskname": "flower.echo", "sort_by": "received"},
        {"taskname": "flower.echo", "sort_by": "-started", "limit": 2, "offset": 1},
        {"search": marker, "sort_by": "name"},
        {"search": f"args:{marker} AND state:failure"},
        {"search": f'"{marker}" OR kwargs:nobody=1', "state": "SUCCESS",
         "workername": stack.hostname, "sort_by": "-received"},
        {"search": marker, "received_start": "2000-01-01 00:00", "sort_by": "received"},
    ]
    for params in queries:
        path = "/api/tasks?" + urllib.parse.urlencode(params)
        (fs, flower), (ls, lookout) = both(stack, "GET", path)
        assert fs == ls == 200, (params, flower, lookout)
        flower = {key: late_sent_undone(stack, key, task) for key, task in flower.items()}
        # Both hold every task of this module's broker, so the answers are equal whole.
        assert list(lookout) == list(flower), params
        assert lookout == flower, params
    # Without sort_by both put the last changed first; arrival order can differ by a hair.
    (_, flower), (_, lookout) = both(stack, "GET", "/api/tasks?search=" + marker)
    assert set(lookout) == set(flower) == set(ids)
    assert [list(task) for task in lookout.values()] == \
        [list(task) for task in flower.values()][:len(lookout)]
    assert {k: types_of(v) for k, v in lookout.items()} == \
        {k: types_of(v) for k, v in flower.items()}


def test_task_types_workers_and_queues_have_flowers_shapes(stack):
    (_, flower), (_, lookout) = both(stack, "GET", "/api/task/types")
    assert lookout == flower and "flower.add" in lookout["task-types"]

    (_, flower), (_, lookout) = both(stack, "GET", "/api/workers?status=true")
    assert lookout == flower == {stack.hostname: True}

    (_, flower), (_, lookout) = both(stack, "GET", "/api/workers?refresh=1")
    assert set(lookout) == set(flower) == {stack.hostname}
    mine, theirs = lookout[stack.hostname], flower[stack.hostname]
    # Either cache may keep the task lists of an earlier one-worker refresh.
    task_lists = {"active", "reserved", "scheduled", "revoked"}
    assert set(mine) - task_lists == set(theirs) - task_lists == {
        "stats", "active_queues", "registered", "conf", "timestamp"}
    assert set(mine["stats"]) == set(theirs["stats"])
    assert types_of(mine["stats"]["pool"]) == types_of(theirs["stats"]["pool"])
    assert mine["registered"] == theirs["registered"]
    assert mine["active_queues"] == theirs["active_queues"]
    assert mine["conf"] == theirs["conf"]  # passwords masked alike

    one = f"/api/workers?workername={stack.hostname}&refresh=true"
    (_, flower), (_, lookout) = both(stack, "GET", one)
    assert set(lookout[stack.hostname]) == set(flower[stack.hostname]) == {
        "stats", "active_queues", "registered", "conf", "scheduled", "active", "reserved",
        "revoked", "timestamp"}
    assert types_of(lookout[stack.hostname]["timestamp"]) == "float"
    (fs, _), (ls, _) = both(stack, "GET", "/api/workers?workername=nobody@nowhere")
    assert fs == ls == 404

    (_, flower), (_, lookout) = both(stack, "GET", "/api/queues/length")
    assert {types_of(q) == {"name": "str", "messages": "int"} for q in
            flower["active_queues"] + lookout["active_queues"]} == {True}
    # Lookout also lists the queues its history names; every worker queue is in both.
    assert {q["name"] for q in flower["active_queues"]} <= \
        {q["name"] for q in lookout["active_queues"]}


# -- sending, results, abort ---------------------------------------------------------------
def test_apply_async_apply_send_task_and_result_answer_as_flower(stack):
    (fs, flower), (ls, lookout) = both(stack, "POST", "/api/task/apply/flower.add",
                                       body={"args": [20, 22], "timeout": 20})
    assert fs == ls == 200
    assert list(lookout) == list(flower) == ["task-id", "result", "state"]
    assert lookout["result"] == flower["result"] == 42 and lookout["state"] == "SUCCESS"

    (fs, flower), (ls, lookout) = both(stack, "POST", "/api/task/apply/flower.fail",
                                       body={"args": ["bad"], "timeout": 20})
    assert list(lookout) == list(flower) == ["task-id", "result", "traceback", "state"]
    assert lookout["result"] == flower["result"] == "ValueError('bad')"

    for kind in ("async-apply", "send-task"):
        (fs, flower), (ls, lookout) = both(stack, "POST", f"/api/task/{kind}/flower.add",
                                           body={"args": [1, 1], "queue": stack.queue})
        assert fs == ls == 200 and types_of(lookout) == types_of(flower) == {
            "task-id": "str", "state": "str"}
        done = wait_for(lambda: api(stack.lookout, "GET",
                                    f"/api/task/result/{lookout['task-id']}?timeout=5",
                                    token=stack.token)[1].get("result"), 30,
                        message=f"{kind} result")
        assert done == 2
        (_, result) = api(stack.flower, "GET", f"/api/task/result/{flower['task-id']}?timeout=5")
        (_, mine) = api(stack.lookout, "GET", f"/api/task/result/{lookout['task-id']}",
                        token=stack.token)
        assert list(mine) == list(result) == ["task-id", "state", "result"]

    for path in ("/api/task/apply/flower.nope", "/api/task/async-apply/flower.nope"):
        (fs, _), (ls, body) = both(stack, "POST", path, body={})
        assert fs == ls == 404, body


def test_abort_reaches_an_abortable_task_through_either(stack):
    for base in ("flower", "lookout"):
        task_id = send(stack, "flower.wait", 60)
        settled(stack, task_id, "STARTED")
        (status, body) = api(getattr(stack, base), "POST", f"/api/task/abort/{task_id}",
                             token=stack.token if base == "lookout" else None)
        assert (status, body) == (200, {"message": f"Aborted '{task_id}'"}), base
        settled(stack, task_id, "SUCCESS")
        (_, result) = api(stack.lookout, "GET", f"/api/task/result/{task_id}",
                          token=stack.token)
        assert result["result"] == "aborted", base


# -- controls ------------------------------------------------------------------------------
def test_control_commands_answer_as_flower(stack):
    worker = stack.hostname
    # Lookout sets limits only for task names in its history (Flower: in its app).
    settled(stack, send(stack, "flower.add", 1, 2), "SUCCESS")
    cases = [
        ("/api/task/rate-limit/flower.add", {"ratelimit": "100/m", "workername": worker}),
        ("/api/task/timeout/flower.add", {"soft": "30", "hard": "60", "workername": worker}),
        (f"/api/worker/pool/grow/{worker}?n=1", None),
        (f"/api/worker/pool/shrink/{worker}?n=1", None),
        (f"/api/worker/pool/autoscale/{worker}?min=1&max=2", None),  # not enabled: refused
        (f"/api/worker/pool/restart/{worker}", None),  # not enabled: refused
        (f"/api/task/revoke/{unique('never-sent')}?terminate=false", None),
    ]
    for path, form in cases:
        (fs, flower), (ls, lookout) = both(stack, "POST", path, form=form)
        assert fs == ls, (path, flower, lookout)
        assert message(lookout) == message(flower), path
        if fs == 200:
            assert lookout == flower
    for base in ("flower", "lookout"):
        queue, token = unique(f"{base}-extra"), stack.token if base == "lookout" else None
        for command, text in (("add-consumer", "add consumer {}"),
                              ("cancel-consumer", "no longer consuming from {}")):
            status, body = api(getattr(stack, base), "POST",
                               f"/api/worker/queue/{command}/{worker}?queue={queue}",
                               token=token)
            assert (status, body) == (200, {"message": text.format(queue)}), (base, body)


def test_the_flower_script_runs_unchanged_against_both(stack):
    runs = {}
    for base in ("flower", "lookout"):
        done = subprocess.run(
            [sys.executable, str(SCRIPT), getattr(stack, base), "flower.add", "flower.wait"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "FLOWER_API_TOKEN": stack.token})
        assert done.returncode == 0, (base, done.stdout, done.stderr[-2000:])
        runs[base] = json.loads(done.stdout)
    flower, lookout = runs["flower"], runs["lookout"]
    for key in ("workers", "concurrency", "alive", "knows_task", "applied", "revoked"):
        assert lookout[key] == flower[key], key
    assert lookout["applied"] == ["SUCCESS", 5] and lookout["revoked"] == "REVOKED"
    assert lookout["recent"] and all(state for _, state in lookout["recent"])
    assert lookout["info"]["name"] == "flower.add"
    assert set(flower["queues"]) <= set(lookout["queues"])


def test_shutdown_stops_a_worker_through_either(stack, tmp_path):
    for base in ("flower", "lookout"):
        hostname = f"{unique('doomed')}@test"
        worker = Process([str(VENV_BIN / "celery"), "-A", "helpers.flower_tasks", "worker",
                          "-n", hostname, "-Q", unique("doomed-q"), "-c", "1",
                          "-l", "INFO", "--without-gossip", "--without-mingle", "-E"],
                         tmp_path / f"{base}.log", stack.env)
        try:
            worker.wait_output("ready.", timeout=60)
            token = stack.token if base == "lookout" else None
            # Flower acts on workers its cache knows; Lookout on those its history knows.
            wait_for(lambda: api(getattr(stack, base), "GET",
                                 f"/api/workers?workername={hostname}&refresh=1",
                                 token=token)[0] == 200, 30, message=f"{base} sees it")
            wait_for(lambda: api(stack.lookout, "GET", "/api/workers?status=1",
                                 token=stack.token)[1].get(hostname), 30,
                     message="in lookout's history")
            status, body = api(getattr(stack, base), "POST",
                               f"/api/worker/shutdown/{hostname}", token=token)
            assert (status, body) == (200, {"message": "Shutting down!"}), base
            wait_for(lambda: worker.popen.poll() is not None, 30, message="worker exits")
        finally:
            worker.stop()


# -- Lookout's own rules on Flower's paths -------------------------------------------------
def test_roles_and_audit_apply_to_flowers_paths(stack):
    task_id = unique("audited")
    path = f"/api/task/revoke/{task_id}"
    assert api(stack.lookout, "POST", path)[0] == 401  # no token: Flower would allow it
    status, body = api(stack.lookout, "POST", path, token=stack.viewer)
    assert status == 403 and "operator" in body["error"]["message"]
    assert api(stack.lookout, "GET", "/api/task/types", token=stack.viewer)[0] == 200
    assert api(stack.lookout, "POST", path, token=stack.token)[0] == 200
    status, audit = api(stack.lookout, "GET", f"/api/v1/audit?target={task_id}",
                        token=stack.token)
    records = [(r["action"], r["outcome"], r["status"], r["actor"]) for r in audit["items"]]
    assert records == [("task.revoke", "ok", 200, "token:flower-script"),
                       ("task.revoke", "refused", 403, "token:flower-viewer"),
                       ("task.revoke", "refused", 401, "anonymous")]
    status, body = api(stack.lookout, "GET", "/api/tasks?limit=many", token=stack.token)
    assert status == 400 and body["error"]["parameter"] == "limit"
    # Public, and Flower's own answer (a liveness probe or a script reading "OK").
    assert api(stack.lookout, "GET", "/healthcheck") == api(stack.flower, "GET",
                                                            "/healthcheck") == (200, "OK")

