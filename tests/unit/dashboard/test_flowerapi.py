"""The Flower-compatible API in process: shapes from the store, parameters, roles, audit.

Stores are real (SQLite and PostgreSQL) and filled with rows as the collector writes them;
apps run with authentication on and a broker that refuses connections, so anything that
got as far as the broker answers 503 (and the spy shows what was attempted), except in
the tests that send for real to this session's Redis. Flower itself is compared in
integration/test_flower_api.py.
"""
from __future__ import annotations

import base64
import json
import time

import pytest
from celery.events.state import Task as CeleryTask

from helpers.control import app_with_users, audit_records, login, spy
from helpers.factories import add_event, add_task, add_worker, set_collector_status
from helpers.workers import unique
from lookout.dashboard.flowerapi.shapes import control_message, timeline_facts

DOWN = "redis://127.0.0.1:1/0"
WORKER = "celery@flower-unit"
FIELDS = list(CeleryTask._fields)  # what Flower's task answers hold, in Celery's order


def _app(database_url: str):
    app = app_with_users(database_url, DOWN)
    app.extensions["lookout.control"].reply_timeout = 0.2
    add_worker(app.extensions["lookout.engine"], WORKER)
    return app


@pytest.fixture
def app(database_url):
    """On SQLite and PostgreSQL: for what reads the store."""
    app = _app(database_url)
    yield app
    app.extensions["lookout.engine"].dispose()


@pytest.fixture
def quick(sqlite_url):
    """On SQLite only: for what the database has no say in (parameters, roles)."""
    app = _app(sqlite_url)
    yield app
    app.extensions["lookout.engine"].dispose()


def bearer(app, role: str) -> dict:
    _, secret = app.extensions["lookout.accounts"].add_token(f"{role}-{unique('t')}", role)
    return {"Authorization": f"Bearer {secret}"}


def get(app, path: str):
    response = app.test_client().get(path, headers=bearer(app, "viewer"))
    return response.status_code, response.get_json()


# -- shapes ------------------------------------------------------------------------------
def test_a_task_has_celerys_fields_and_what_its_timeline_tells(app):
    engine = app.extensions["lookout.engine"]
    parent = add_task(engine, state="SUCCESS", root_id=None, sent_at=100.0, received_at=101.0,
                      started_at=102.0, succeeded_at=103.0, state_ts=103.0, runtime=1.0,
                      result="5", exchange="", routing_key="celery")
    for kind, ts, host, clock in (("task-sent", 100.0, "client@web", 4),
                                  ("task-received", 101.0, WORKER, 7),
                                  ("task-started", 102.0, WORKER, 8),
                                  ("task-succeeded", 103.0, WORKER, 9)):
        add_event(engine, parent["uuid"], kind, timestamp=ts, hostname=host, clock=clock)
    child = add_task(engine, state="FAILURE", parent_id=parent["uuid"], root_id=parent["uuid"],
                     runtime=0.4, exception="KeyError('x')", traceback="Traceback ...")

    status, info = get(app, f"/api/task/info/{parent['uuid']}")
    assert status == 200 and list(info) == FIELDS
    assert (info["sent"], info["received"], info["started"], info["succeeded"]) == \
        (100.0, 101.0, 102.0, 103.0)
    assert (info["timestamp"], info["runtime"], info["result"], info["worker"]) == \
        (103.0, 1.0, "5", "celery@worker1")
    assert (info["client"], info["clock"], info["children"]) == \
        ("client@web", 9, [child["uuid"]])
    status, info = get(app, f"/api/task/info/{child['uuid']}")
    assert (info["parent"], info["root"], info["exception"]) == \
        (parent["uuid"], parent["uuid"], "KeyError('x')")
    assert info["runtime"] is None  # Flower only has a runtime from task-succeeded
    assert info["clock"] == 0 and info["client"] is None  # no events stored

    status, listed = get(app, "/api/tasks")
    assert list(listed) == [child["uuid"], parent["uuid"]]  # last changed first
    assert list(listed[parent["uuid"]]) == [f for f in FIELDS if f != "worker"] + ["worker"]
    assert listed[parent["uuid"]] == get(app, f"/api/task/info/{parent['uuid']}")[1]
    assert get(app, "/api/task/info/nope") == (404, {"error": {
        "status": 404, "message": "Unknown task 'nope'"}})
    assert get(app, "/api/task/types") == (200, {"task-types": ["proj.tasks.add"]})


def test_flowers_ui_datatable_is_a_404_that_points_to_the_api(app):
    """It read as the page of a task named "datatable": a 200 a script could not parse."""
    status, body = get(app, "/tasks/datatable?draw=1&start=0&length=2")
    assert status == 404
    assert body["error"]["message"].startswith(
        "Flower's UI endpoint /tasks/datatable is not served: use /api/tasks")


def test_task_lists_filter_sort_and_page_as_flower(app):
    engine = app.extensions["lookout.engine"]
    local = time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, -1))  # Flower reads dates locally
    rows = [add_task(engine, name=name, state=state, worker=worker, received_at=received,
                     updated_at=local + i, started_at=None if state == "RECEIVED" else local)
            for i, (name, state, worker, received) in enumerate([
                ("a.one", "SUCCESS", "w1", local - 3600), ("b.two", "FAILURE", "w2", local),
                ("a.one", "RECEIVED", "w2", None), ("c.three", "SUCCESS", "w1", local + 60)])]
    ids = [row["uuid"] for row in rows]

    def listed(query: str) -> list[str]:
        status, body = get(app, "/api/tasks?" + query)
        assert status == 200, body
        return list(body)

    assert listed("") == ids[::-1]
    assert listed("limit=2&offset=1") == [ids[2], ids[1]]
    assert listed("limit=0") == []  # a negative offset: test_unknown_parameters.py
    assert listed("taskname=a.one") == [ids[2], ids[0]]
    assert listed("workername=w2&state=failure") == [ids[1]]
    assert listed("taskname=All&workername=&state=All") == ids[::-1]
    # Flower casefolds taskname and workername (a trial's script asked for APP.FAIL).
    assert listed("taskname=A.ONE") == [ids[2], ids[0]]
    assert listed("workername=W2&state=FAILURE") == [ids[1]]
    assert listed("taskname=a.ONE&workername=w1") == [ids[0]]
    # Tasks never received: first when ascending, last when descending, as in Flower.
    assert listed("sort_by=received") == [ids[2], ids[0], ids[1], ids[3]]
    assert listed("sort_by=-received") == [ids[3], ids[1], ids[0], ids[2]]
    assert listed("sort_by=name")[:2] == sorted(ids[:3:2])
    assert listed("received_start=2026-03-01 12:00&received_end=2026-03-01 12:01") == \
        [ids[3], ids[1]]


def test_a_page_that_stops_short_of_the_matching_tasks_says_so_in_headers(app):
    """Flower answers every task it holds; Lookout's /api/tasks stops at 1,000 without a
    limit, and its body (an object keyed by id) has no room to say so: headers do."""
    engine = app.extensions["lookout.engine"]
    for i in range(5):
        add_task(engine, name="p.page", updated_at=1000.0 + i)
    client = app.test_client()
    headers = bearer(app, "viewer")
    first = client.get("/api/tasks?taskname=p.page&limit=2", headers=headers)
    assert len(first.get_json()) == 2 and first.headers["X-Lookout-More"] == "true"
    nxt = first.headers["Link"]
    assert nxt == '</api/tasks?taskname=p.page&limit=2&offset=2>; rel="next"'
    last = client.get("/api/tasks?taskname=p.page&limit=2&offset=4", headers=headers)
    assert len(last.get_json()) == 1
    assert "X-Lookout-More" not in last.headers and "Link" not in last.headers
    whole = client.get("/api/tasks?taskname=p.page&limit=5", headers=headers)
    assert len(whole.get_json()) == 5 and "X-Lookout-More" not in whole.headers
    deep = client.get("/api/tasks?taskname=p.page&limit=1&offset=100000", headers=headers)
    assert deep.status_code == 200 and "Link" not in deep.headers


SEARCH_ROWS = [
    {"name": "billing.invoice", "args": "(100, 'EUR')", "kwargs": "{'customer': 1, 'rush': True}",
     "result": "'sent'"},
    {"name": "billing.refund", "args": "(1000,)", "kwargs": "{'customer': 10}",
     "result": None, "state": "FAILURE"},
    {"name": "mail.send", "args": "('ann@example.com',)", "kwargs": "{'subject': 'Hi 100%'}",
     "result": "'queued'"},
]


@pytest.mark.parametrize("search, expected", [
    ("billing", [0, 1]),
    ("name:mail", [2]),
    ("state:failure", [1]),
    ("kwargs:customer=1", [0]),  # not 'customer': 10
    ("kwargs:subject=Hi 100%", []),  # a bare term stops at the space...
    ('kwargs:"subject=Hi 100%"', [2]),  # ...a quoted one does not; % is literal
    ("args:100 AND result:sent", [0]),
    ("args:100 OR name:mail", [0, 1, 2]),
    ("(name:refund OR result:queued) rush", []),
    ("(name:refund OR result:queued) customer", [1]),
    ('"100%"', [2]),
    ("EUR", [0]),
])
def test_search_is_flowers_syntax(app, search, expected):
    engine = app.extensions["lookout.engine"]
    ids = [add_task(engine, **{"state": "SUCCESS", **row})["uuid"] for row in SEARCH_ROWS]
    status, body = get(app, "/api/tasks?sort_by=name&search=" + search.replace("%", "%25")
                       .replace(" ", "%20"))
    assert status == 200, body
    assert sorted(body) == sorted(ids[i] for i in expected)


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("path, parameter", [
    ("/api/tasks?limit=x", "limit"), ("/api/tasks?limit=20000", "limit"),
    ("/api/tasks?offset=1.5", "offset"), ("/api/tasks?sort_by=runtime", "sort_by"),
    ("/api/tasks?state=DONE", "state"), ("/api/tasks?received_start=2026-01-01", "received_start"),
    ("/api/tasks?received_end=yesterday", "received_end"), ("/api/tasks?satte=SUCCESS", "satte"),
    ("/api/tasks?search=ab", "search"), ("/api/tasks?search=NOT%20abc", "search"),
    ("/api/tasks?search=(abc", "search"), ("/api/tasks?search=-abc", "search"),
    ("/api/tasks?search=abc%20OR", "search"), ("/api/tasks?search=%22abc", "search"),
    ("/api/tasks?taskname=" + "x" * 300, "taskname"),
    ("/api/workers?refresh=maybe", "refresh"), ("/api/workers?status=2", "status"),
    ("/api/workers?worker=a", "worker"), ("/api/task/types?all=1", "all"),
    ("/api/task/info/abc?full=1", "full"), ("/api/task/result/abc?timeout=soon", "timeout"),
    ("/api/task/result/abc?timeout=3600", "timeout"), ("/api/queues/length?x=1", "x"),
])
def test_bad_query_parameters_are_400s_naming_them(quick, path, parameter):
    status, body = get(quick, path)
    assert status == 400, body
    assert body["error"]["parameter"] == parameter


@pytest.mark.parametrize("path, data, parameter", [
    ("/api/task/async-apply/proj.tasks.add", '{"args": "1, 2"}', "args"),
    ("/api/task/async-apply/proj.tasks.add", '{"kwargs": [1]}', "kwargs"),
    ("/api/task/async-apply/proj.tasks.add", "[1, 2]", "body"),
    ("/api/task/send-task/proj.tasks.add", "{args: [1]}", "body"),
    ("/api/task/send-task/proj.tasks.add", '{"countdown": "soon"}', "countdown"),
    ("/api/task/send-task/proj.tasks.add", '{"eta": "tomorrow"}', "eta"),
    ("/api/task/send-task/proj.tasks.add", '{"priority": 300}', "priority"),
    ("/api/task/send-task/proj.tasks.add", '{"link": "x"}', "link"),
    ("/api/task/send-task/proj.tasks.add", '{"timeout": 5}', "timeout"),  # apply's only
    ("/api/task/apply/proj.tasks.add", '{"timeout": -1}', "timeout"),
    ("/api/task/revoke/abc?terminate=maybe", None, "terminate"),
    ("/api/task/revoke/abc?terminate=1&signal=SIGSEGV", None, "signal"),
    ("/api/task/revoke/abc?reason=x", None, "reason"),
    ("/api/task/abort/abc?now=1", None, "now"),
    ("/api/task/rate-limit/proj.tasks.add?ratelimit=10/m", None, "workername"),
    (f"/api/task/rate-limit/proj.tasks.add?workername={WORKER}", None, "ratelimit"),
    (f"/api/task/rate-limit/proj.tasks.add?workername={WORKER}&ratelimit=fast", None,
     "ratelimit"),
    (f"/api/task/timeout/proj.tasks.add?workername={WORKER}&soft=abc", None, "soft"),
    (f"/api/task/timeout/proj.tasks.add?workername={WORKER}&soft=50&hard=10", None, "soft"),
    (f"/api/worker/pool/grow/{WORKER}?n=x", None, "n"),
    (f"/api/worker/pool/shrink/{WORKER}?n=1000", None, "n"),
    (f"/api/worker/pool/autoscale/{WORKER}?max=4", None, "min"),
    (f"/api/worker/queue/add-consumer/{WORKER}", None, "queue"),
    (f"/api/worker/queue/cancel-consumer/{WORKER}?queue=no%20spaces", None, "queue"),
    (f"/api/worker/shutdown/{WORKER}?now=1", None, "now"),
])
def test_bad_post_parameters_are_400s_naming_them_and_audited(quick, path, data, parameter):
    response = quick.test_client().post(path, data=data, headers=bearer(quick, "operator"))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["parameter"] == parameter
    [record] = audit_records(quick)
    assert (record["outcome"], record["status"]) == ("invalid", 400)
    assert spy(quick).calls == []  # refused before anything was sent


# -- roles, CSRF, audit --------------------------------------------------------------------
POSTS = [
    ("/api/task/apply/proj.tasks.add", "task.apply", "proj.tasks.add"),
    ("/api/task/async-apply/proj.tasks.add", "task.async_apply", "proj.tasks.add"),
    ("/api/task/send-task/proj.tasks.add", "task.send", "proj.tasks.add"),
    ("/api/task/revoke/t-1", "task.revoke", "t-1"),
    ("/api/task/abort/t-1", "task.abort", "t-1"),
    ("/api/task/rate-limit/proj.tasks.add", "rate_limit", "proj.tasks.add"),
    ("/api/task/timeout/proj.tasks.add", "time_limit", "proj.tasks.add"),
    (f"/api/worker/shutdown/{WORKER}", "worker.shutdown", WORKER),
    (f"/api/worker/pool/restart/{WORKER}", "worker.pool_restart", WORKER),
    (f"/api/worker/pool/grow/{WORKER}", "worker.pool_grow", WORKER),
    (f"/api/worker/pool/shrink/{WORKER}", "worker.pool_shrink", WORKER),
    (f"/api/worker/pool/autoscale/{WORKER}", "worker.autoscale", WORKER),
    (f"/api/worker/queue/add-consumer/{WORKER}", "worker.add_consumer", WORKER),
    (f"/api/worker/queue/cancel-consumer/{WORKER}", "worker.cancel_consumer", WORKER),
]


def test_every_post_needs_an_operator_and_leaves_one_record(quick):
    viewer = bearer(quick, "viewer")
    for path, action, target in POSTS:
        response = quick.test_client().post(path, headers=viewer)
        assert response.status_code == 403, path
        assert quick.test_client().post(path).status_code == 401, path
    assert spy(quick).calls == []
    records = audit_records(quick, limit="100")
    assert len(records) == 2 * len(POSTS)
    by_path = iter(reversed(records))
    for path, action, target in POSTS:
        viewer_record, anonymous_record = next(by_path), next(by_path)
        assert (viewer_record["action"], viewer_record["outcome"], viewer_record["role"],
                viewer_record["targets"]) == (action, "refused", "viewer", [target]), path
        assert (anonymous_record["action"], anonymous_record["status"]) == (action, 401)


def test_session_posts_need_the_csrf_token_and_read_only_refuses(quick):
    client = quick.test_client()
    csrf = login(client, "otto")
    assert client.post("/api/task/revoke/t-2").status_code == 403
    # With the token (a header, or a form field beside Flower's parameters) it goes on,
    # to a broker that is down.
    assert client.post("/api/task/revoke/t-2", headers={"X-CSRF-Token": csrf}
                       ).status_code == 503
    response = client.post("/api/task/revoke/t-2", data={"terminate": "true",
                                                         "signal": "KILL", "csrf_token": csrf})
    assert response.status_code == 503, response.get_json()
    assert [call[0] for call in spy(quick).calls] == ["revoke", "revoke"]
    assert spy(quick).calls[1][1] == {"task_id": "t-2", "terminate": True, "signal": "SIGKILL"}
    # A script that sends Content-Type: application/json on every request, with no body
    # (requests.Session with default headers): an empty body is no body, as for Flower.
    response = client.post("/api/task/revoke/t-2?terminate=true", headers={
        "X-CSRF-Token": csrf, "Content-Type": "application/json"})
    assert response.status_code == 503, response.get_json()  # sent, to a broker that is down
    assert spy(quick).calls[2][1] == {"task_id": "t-2", "terminate": True, "signal": "SIGTERM"}
    del spy(quick).calls[2:]

    quick.config["LOOKOUT"].read_only = True
    response = client.post("/api/task/revoke/t-3", headers=bearer(quick, "admin"))
    assert response.status_code == 403 and "read-only" in response.get_json()["error"]["message"]
    assert len(spy(quick).calls) == 2


def test_healthcheck_answers_as_flower_while_the_store_answers(quick):
    """Flower's /healthcheck says "OK" whenever Flower runs; it was /healthz here, whose
    503 without a collector would make a Flower migrant's liveness probe restart pods."""
    anonymous = quick.test_client()
    assert anonymous.get("/healthz").status_code == 503  # no collector yet
    response = anonymous.get("/healthcheck")
    assert (response.status_code, response.get_data(as_text=True),
            response.mimetype) == (200, "OK", "text/plain")
    assert response.headers["Cache-Control"] == "no-store"


def test_broker_trouble_is_503_and_known_workers_are_served_without_it(quick):
    engine = quick.extensions["lookout.engine"]
    add_worker(engine, "celery@gone", online=False)
    assert get(quick, "/api/workers?status=1") == (200, {WORKER: True, "celery@gone": False})
    assert get(quick, "/api/workers") == (200, {})  # nothing inspected yet; nothing to serve
    assert get(quick, "/api/workers?refresh=1")[0] == 503
    assert get(quick, f"/api/workers?workername={WORKER}")[0] == 404
    assert get(quick, "/api/queues/length")[0] == 503


def _add(x, y):
    return x + y


def test_an_unreachable_broker_or_backend_is_a_503(quick):
    from celery import Celery

    celery = Celery("down", broker=DOWN, backend="redis://127.0.0.1:1/1", set_as_current=False)
    celery.task(name="proj.tasks.add")(_add)  # registered: sent with its own options
    quick.config["LOOKOUT"].extra["celery_app"] = celery
    client, operator = quick.test_client(), bearer(quick, "operator")
    for method, path, reached in (
            (client.post, "/api/task/async-apply/proj.tasks.add", "broker"),
            (client.post, "/api/task/apply/proj.tasks.add", "broker"),
            (client.get, "/api/task/result/t-4", "result backend"),
            (client.post, "/api/task/abort/t-4", "result backend")):
        response = method(path, headers=operator)
        assert response.status_code == 503, (path, response.get_json())
        assert response.get_json()["error"]["message"].startswith(reached), path
    celery.close()


# -- really sending (this session's Redis) ---------------------------------------------
def test_async_apply_reads_json_sent_as_a_form_and_sends_it(sqlite_url, redis_broker):
    import redis

    app = app_with_users(sqlite_url, redis_broker)
    add_task(app.extensions["lookout.engine"], name="proj.known")
    queue = unique("flower-unit-q")
    body = json.dumps({"args": [1, "a+b"], "kwargs": {"q": "c=d&e"}, "queue": queue})
    client, operator = app.test_client(), bearer(app, "operator")
    # What `curl -d '{...}'` sends: JSON under a form Content-Type, as Flower accepts it.
    response = client.post("/api/task/async-apply/proj.known", data=body, headers={
        **operator, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.get_json()
    assert list(response.get_json()) == ["task-id"]  # no result backend: no state, as Flower
    messages = redis.Redis.from_url(redis_broker).lrange(queue, 0, -1)
    assert len(messages) == 1
    sent = json.loads(base64.b64decode(json.loads(messages[0])["body"]))
    assert sent[:2] == [[1, "a+b"], {"q": "c=d&e"}]
    # null is "not given", as Flower passes it to apply_async (a trial's script sent it).
    nulls = client.post("/api/task/async-apply/proj.known", headers=operator, json={
        "args": [2], "kwargs": None, "queue": queue, "countdown": None})
    assert nulls.status_code == 200, nulls.get_json()
    sent = json.loads(base64.b64decode(json.loads(
        redis.Redis.from_url(redis_broker).lrange(queue, 0, -1)[0])["body"]))
    assert sent[:2] == [[2], {}]  # the newest message: kombu pushes on the left

    unknown = client.post("/api/task/async-apply/proj.unknown", json={"queue": queue},
                          headers=operator)
    assert unknown.status_code == 404  # neither in an app nor in the history
    assert client.post("/api/task/send-task/proj.unknown", json={"queue": queue},
                       headers=operator).status_code == 200  # by name, as Flower
    for path in ("/api/task/apply/proj.known", "/api/task/abort/x", "/api/task/result/x"):
        method = client.get if "result" in path else client.post
        response = method(path, headers=operator)
        assert response.status_code == 503 and "result backend" in \
            response.get_json()["error"]["message"], path
    assert redis.Redis.from_url(redis_broker).llen(queue) == 3  # apply sent nothing
    app.extensions["lookout.engine"].dispose()


# -- Flower's control messages ---------------------------------------------------------
def test_control_messages_are_flowers():
    ok = [{"worker": "w", "ok": True, "reply": {"ok": "add consumer q"}}]
    refused = [{"worker": "w", "ok": False, "reply": {"error": "ValueError('no')"}}]
    silent = [{"worker": "w", "ok": False, "reply": None, "error": "no reply within 1s"}]
    assert control_message("pool_grow", "w", {"n": 2}, ok) == \
        (True, "Growing 'w' worker's pool by 2")
    assert control_message("add_consumer", "w", {"queue": "q"}, ok) == (True, "add consumer q")
    assert control_message("autoscale", "w", {"min": 1, "max": 3}, refused) == \
        (False, "Failed to autoscale 'w' worker: ValueError('no')")
    assert control_message("rate_limit", "w", {}, silent) == \
        (False, "Failed to set rate limit: 'no reply within 1s'")
    assert control_message("shutdown", "w", {}, silent) == (True, "Shutting down!")


def test_the_clock_is_the_state_setting_events_not_a_late_stamped_task_sents():
    """A client stamps task-sent after publishing: on a fast worker it can carry a later
    time than task-started. The state (and Flower's `timestamp`) are task-started's, and
    so is the clock; the client is task-sent's host either way."""
    def ev(kind, ts, clock, host="w@h"):
        return {"type": kind, "timestamp": ts, "clock": clock, "hostname": host}
    running = [ev("task-received", 10.0, 5), ev("task-started", 10.1, 6),
               ev("task-sent", 10.2, 1, "client@web")]
    assert timeline_facts(running) == (6, "client@web")
    done = [*running, ev("task-succeeded", 10.15, 7)]  # final beats any later stamp
    assert timeline_facts(reversed(done)) == (7, "client@web")
    assert timeline_facts([ev("task-sent", 9.0, 3, "c@x")]) == (3, "c@x")
    assert timeline_facts([]) == (None, None)


def test_unknown_workers_and_tasks_get_flowers_own_words(quick):
    """A script matching Flower's texts keeps working (a trial compared them)."""
    client = quick.test_client()
    headers = bearer(quick, "operator")
    add_task(quick.extensions["lookout.engine"], name="proj.tasks.add")
    worker = client.post("/api/task/rate-limit/proj.tasks.add?workername=nope@vm&ratelimit=1",
                         headers=headers)
    assert worker.status_code == 404
    assert worker.get_json()["error"]["message"] == "Unknown worker 'nope@vm'"
    task = client.post(f"/api/task/rate-limit/proj.nope?workername={WORKER}&ratelimit=1",
                       headers=headers)
    assert task.status_code == 404
    assert task.get_json()["error"]["message"] == "Unknown task 'proj.nope'"
