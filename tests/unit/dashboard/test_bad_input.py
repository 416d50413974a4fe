"""Bad input is a 400 naming what is wrong, never a 500, on both stores."""
from __future__ import annotations

import pytest

from helpers.control import PASSWORD, app_with_users, csrf_from
from helpers.factories import add_task, add_worker
from lookout.dashboard.history.query import encode_cursor, parse_sort


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url)


@pytest.mark.parametrize("url, parameter", [
    ("/api/v1/tasks?name=proj%00.add", "name"),
    ("/api/v1/tasks?q=report%00", "q"),
    ("/api/v1/tasks?worker=%00", "worker"),
    ("/api/v1/tasks/abc%00def", "path"),
    ("/api/v1/workers/w%00@h", "path"),
    ("/api/v1/audit?actor=ada%00", "actor"),
    ("/api/v1/audit?target=%00", "target"),
])
def test_nul_anywhere_is_a_400_naming_where(app, client, url, parameter):
    add_task(app.extensions["lookout.engine"], args="('report',)")
    response = client.get(url)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert error["parameter"] == parameter and "NUL" in error["message"]


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_cursor_values_beyond_64_bits_are_400(client, value):
    cursor = encode_cursor(parse_sort("-timestamp"), value, "some-uuid")
    response = client.get(f"/api/v1/tasks?cursor={cursor}")
    assert response.status_code == 400 and response.get_json()["error"]["parameter"] == "cursor"


@pytest.mark.parametrize("cursor", ["9223372036854775808", "0", "-1"])
def test_audit_cursor_out_of_range_is_400(client, cursor):
    response = client.get(f"/api/v1/audit?cursor={cursor}")
    assert response.status_code == 400 and response.get_json()["error"]["parameter"] == "cursor"


def test_login_refuses_nul_and_never_redirects_with_cr_lf(sqlite_url, redis_broker):
    app = app_with_users(sqlite_url, redis_broker)
    try:
        client = app.test_client()
        evil_next = "/tasks\r\nSet-Cookie: stolen=1"
        page = client.get("/login", query_string={"next": evil_next}).get_data(as_text=True)
        assert "stolen" not in page
        csrf = csrf_from(page)
        response = client.post("/login", data={"username": "ada\x00", "password": PASSWORD,
                                               "csrf_token": csrf})
        assert response.status_code == 400
        assert response.get_json()["error"]["parameter"] == "username"
        response = client.post("/login", data={"username": "ada", "password": PASSWORD,
                                               "csrf_token": csrf, "next": evil_next})
        assert response.status_code == 302 and response.headers["Location"] == "/"
        assert "stolen" not in str(response.headers)
    finally:
        app.extensions["lookout.engine"].dispose()


def test_non_finite_numbers_are_refused_and_never_poison_the_audit_trail(sqlite_url):
    import json

    app = app_with_users(sqlite_url, "memory://", auth=False)
    client = app.test_client()
    csrf = csrf_from(client.get("/controls").get_data(as_text=True))
    for body in ('{"grace": 1e999}', '{"grace": NaN}', '{"filters": {}, "dry_run": [-Infinity]}'):
        response = client.put("/api/v1/schedules/app/x/thresholds", data=body,
                              headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
        assert response.status_code == 400, body
    # refused before the body is read (no CSRF token): the record keeps it as text
    refused = client.post("/api/v1/tasks/retry", data='{"expected_count": 1e999}',
                          headers={"Content-Type": "application/json"})
    assert refused.status_code == 403
    text = client.get("/api/v1/audit").get_data(as_text=True)
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the audit JSON"))
    assert "inf" in text


@pytest.mark.parametrize("body, parameter", [
    ({"filters": {}, "dry_run": "no"}, "dry_run"),
    ({"filters": {}, "dry_run": 0}, "dry_run"),
    ({"filters": {}, "dry_run": False, "expected_count": "x"}, "expected_count"),
])
def test_bulk_flags_must_be_what_they_say(make_app, sqlite_url, body, parameter):
    app = make_app(sqlite_url)
    client = app.test_client()
    csrf = csrf_from(client.get("/controls").get_data(as_text=True))
    for path in ("/api/v1/tasks/retry", "/api/v1/tasks/revoke"):
        response = client.post(path, json=body, headers={"X-CSRF-Token": csrf})
        assert response.status_code == 400 and \
            response.get_json()["error"]["parameter"] == parameter, (path, response.get_json())


@pytest.mark.parametrize("path, body, parameter", [
    ("/api/v1/tasks/running/revoke", {"terminate": "false"}, "terminate"),  # truthy text
    ("/api/v1/tasks/running/revoke", {"terminate": 0}, "terminate"),
    ("/api/v1/tasks/running/revoke", {"terminat": True}, "terminat"),  # a typo
    ("/api/v1/tasks/revoke", {"filters": {"state": "STARTED"}, "dry_run": False,
                              "terminate": "no"}, "terminate"),
    ("/api/v1/tasks/revoke", {"filters": {"state": "STARTED"}, "dry_run": False,
                              "wait": "yes"}, "wait"),
    ("/api/v1/tasks/revoke", {"filter": {"state": "STARTED"}, "dry_run": False}, "filter"),
    ("/api/v1/tasks/retry", {"filters": {}, "dry_run": False, "terminate": True},
     "terminate"),
    ("/api/v1/rate-limits", {"task_name": "proj.add", "rate": "1/s"}, "rate"),
    ("/api/v1/time-limits", {"task_name": "proj.add", "soft": 5, "hrad": 9}, "hrad"),
    ("/api/v1/workers/celery@w1/pool/grow", {"count": 2}, "count"),
    ("/api/v1/workers/celery@w1/shutdown", {"now": True}, "now"),
])
def test_control_bodies_take_json_booleans_and_known_keys_only(make_app, sqlite_url, path,
                                                                body, parameter):
    """Nothing is sent for a body the API cannot read exactly: the text "false" is truthy
    in Python, and read that way it would terminate a running task."""
    app = make_app(sqlite_url)
    sent = []
    app.extensions["lookout.control"].broadcaster = \
        lambda command, arguments, destination, timeout: sent.append(command) or []
    engine = app.extensions["lookout.engine"]
    add_task(engine, uuid="running", name="proj.add", state="STARTED")
    add_worker(engine, "celery@w1")
    client = app.test_client()
    csrf = csrf_from(client.get("/controls").get_data(as_text=True))
    response = client.post(path, json=body, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["parameter"] == parameter
    assert sent == []
    # The same request with a real boolean or no typo goes out.
    response = client.post("/api/v1/tasks/running/revoke", json={"terminate": False},
                           headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200 and response.get_json()["parameters"] == {
        "terminate": False, "signal": None}
    assert sent == ["revoke"]


def test_audit_outcome_filter_names_the_known_values(make_app, sqlite_url):
    response = make_app(sqlite_url).test_client().get("/api/v1/audit?outcome=weird")
    assert response.status_code == 400 and response.get_json()["error"]["parameter"] == "outcome"


@pytest.mark.parametrize("path", ["/api/v1/tasks?q=", "/tasks?q="])
def test_an_over_long_url_is_a_json_414(client, path):
    response = client.get(path + "x" * 9000)
    assert response.status_code == 414
    assert response.get_json()["error"]["status"] == 414
    assert "8000 characters" in response.get_json()["error"]["message"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_built_in_server_answers_its_own_414_in_json(app):
    """A request line past Werkzeug's 64 KB limit never reaches Flask: the server's own
    answer must still be the API's JSON (the server `lookout web` and `lookout run` use)."""
    import json
    import socket
    import threading

    from werkzeug.serving import make_server

    from lookout.dashboard.server import json_error_handler

    server = make_server("127.0.0.1", 0, app, threaded=True,
                         request_handler=json_error_handler())
    thread = threading.Thread(target=server.serve_forever, name="lookout-test-server")
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"GET /api/v1/tasks?q=" + b"x" * 70_000 + b" HTTP/1.1\r\n"
                         b"Host: 127.0.0.1\r\n\r\n")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414"), head[:200]
    assert b"Content-Type: application/json" in head and b"nosniff" in head
    assert json.loads(body)["error"]["status"] == 414


# -- found by a hostile-input trial: each was a 500 (or a redirect off an /api path) ------
def _bearer(app, role: str) -> dict:
    from helpers.workers import unique

    _, secret = app.extensions["lookout.accounts"].add_token(unique(role), role)
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def guarded(database_url):
    from helpers.control import audit_records  # noqa: F401 - used by the tests below

    app = app_with_users(database_url, "redis://127.0.0.1:1/0")
    add_task(app.extensions["lookout.engine"], uuid="t-1", state="STARTED")
    yield app
    app.extensions["lookout.engine"].dispose()


def test_a_body_nested_past_the_recursion_limit_is_a_400_and_audited(guarded):
    from helpers.control import audit_records

    deep = "[" * 100_000 + "]" * 100_000
    client = guarded.test_client()
    headers = {"Content-Type": "application/json"}
    refused = client.post("/api/v1/tasks/t-1/revoke", data=deep,
                          headers={**headers, **_bearer(guarded, "viewer")})
    assert refused.status_code == 403  # the guard's answer, not a 500 from the recorder
    answered = client.post("/api/v1/tasks/t-1/revoke", data=deep,
                           headers={**headers, **_bearer(guarded, "admin")})
    assert answered.status_code == 400
    assert answered.get_json()["error"] == {"status": 400, "parameter": "body",
                                            "message": "body: nested too deeply"}
    assert [r["status"] for r in audit_records(guarded, action="task.revoke")] == [400, 403]


def test_a_flower_body_over_its_cap_is_a_413_and_audited(guarded):
    from helpers.control import audit_records

    response = guarded.test_client().post(
        "/api/task/revoke/t-1", data='{"terminate": false, "pad": "' + "x" * 1_100_000 + '"}',
        headers={"Content-Type": "application/json", **_bearer(guarded, "viewer")})
    assert response.status_code == 413 and response.is_json
    assert [r["status"] for r in audit_records(guarded, target="t-1")] == [413]


@pytest.mark.parametrize("filters, parameter", [
    ({"state": 1}, "state"),  # a number is text here: not a state
    ({"state": None}, "filters.state"),
    ({"name": {"$ne": 1}}, "filters.name"),
    ({"state": ["FAILURE", {"x": 1}]}, "filters.state"),
])
def test_bulk_filters_of_another_type_are_400s_naming_them(guarded, filters, parameter):
    for path in ("/api/v1/tasks/revoke", "/api/v1/tasks/retry"):
        response = guarded.test_client().post(path, json={"filters": filters},
                                              headers=_bearer(guarded, "admin"))
        assert response.status_code == 400, (path, response.get_data(as_text=True)[:200])
        assert response.get_json()["error"]["parameter"] == parameter


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/v1/audit/2147483648"), ("GET", "/api/v1/audit/9223372036854775808"),
    ("DELETE", "/api/v1/tokens/2147483648"), ("DELETE", "/api/v1/tokens/99999999999999999999"),
    ("PUT", "/api/v1/alert-rules/2147483648"), ("DELETE", "/api/v1/alert-rules/2147483648"),
])
def test_ids_no_row_can_have_are_404s(guarded, method, path):
    response = guarded.test_client().open(path, method=method, json={},
                                          headers=_bearer(guarded, "admin"))
    assert response.status_code == 404 and response.is_json, response.get_data(as_text=True)[:200]


def test_an_audit_cursor_past_the_last_id_is_the_first_page(guarded):
    client = guarded.test_client()
    headers = _bearer(guarded, "admin")
    client.post("/api/v1/tasks/t-1/revoke", json={}, headers=headers)
    response = client.get("/api/v1/audit?cursor=2147483648", headers=headers)
    assert response.status_code == 200 and len(response.get_json()["items"]) >= 1


@pytest.mark.parametrize("path, body, parameter", [
    ("/api/v1/alert-rules", {"name": "r", "kind": "failure_rate",
                             "params": {"threshold": 10**400}}, "params.threshold"),
    ("/api/v1/alert-rules", {"name": "r", "kind": "failure_rate", "cooldown": 10**400},
     "cooldown"),
    ("/api/v1/time-limits", {"task_name": "proj.add", "hard": 10**400}, "hard"),
    ("/api/task/timeout/proj.add", {"hard": 10**400, "workername": "celery@w1"}, "hard"),
])
def test_integers_no_float_holds_are_400s(guarded, path, body, parameter):
    import json

    response = guarded.test_client().post(path, data=json.dumps(body),
                                          headers={"Content-Type": "application/json",
                                                   **_bearer(guarded, "admin")})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["parameter"] == parameter


@pytest.mark.parametrize("method, path", [
    ("POST", "/api/v1/tasks/%2F/revoke"), ("POST", "/api/v1/tasks/%2F/retry"),
    ("GET", "/api/v1/workers/%2F/inspect"), ("POST", "/api/v1/workers/%2F/pool/grow"),
])
def test_an_encoded_slash_is_never_redirected_to_another_endpoint(guarded, method, path):
    response = guarded.test_client().open(path, method=method, json={},
                                          headers=_bearer(guarded, "admin"))
    assert response.status_code == 404 and response.is_json, \
        (response.status_code, response.headers.get("Location"))


def test_a_nameless_parameter_is_named_and_account_errors_name_their_field(guarded):
    client = guarded.test_client()
    headers = _bearer(guarded, "admin")
    error = client.get("/api/v1/tasks?=1", headers=headers).get_json()["error"]
    assert error["parameter"] == "" and error["message"].startswith(
        "(a parameter without a name): unknown parameter")
    for path, body, parameter in (
            ("/api/v1/users", {"username": "bad name!", "password": "x" * 20}, "username"),
            ("/api/v1/users", {"username": "newbie", "password": "x" * 20, "role": "god"},
             "role"),
            ("/api/v1/users", {"username": "newbie", "password": "short"}, "password"),
            ("/api/v1/tokens", {"name": "", "role": "viewer"}, "name"),
            ("/api/v1/tokens", {"name": "t", "role": "god"}, "role")):
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 400, (path, body)
        assert response.get_json()["error"]["parameter"] == parameter, (path, body)


def test_a_signed_in_post_without_its_csrf_token_is_told_so(guarded):
    """It was told "no session and no API token" while signed in."""
    client = guarded.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"username": "otto", "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    response = client.post("/api/v1/tasks/t-1/revoke", json={})
    assert response.status_code == 403
    message = response.get_json()["error"]["message"]
    assert "CSRF token" in message and "no session" not in message, message


def test_a_task_id_with_slashes_is_found_and_controlled(guarded):
    """Celery takes any task id; one with "/" was stored and listed, and then 404."""
    from helpers.control import spy

    add_task(guarded.extensions["lookout.engine"], uuid="reports/2026-12/1", state="STARTED")
    client = guarded.test_client()
    headers = _bearer(guarded, "admin")
    for path in ("/api/v1/tasks/reports%2F2026-12%2F1", "/api/v1/tasks/reports/2026-12/1",
                 "/api/v1/trouble/tasks/reports%2F2026-12%2F1", "/tasks/reports%2F2026-12%2F1"):
        assert client.get(path, headers=headers).status_code == 200, path
    assert client.get("/api/v1/tasks/reports%2F2026-12%2F1",
                      headers=headers).get_json()["uuid"] == "reports/2026-12/1"
    client.post("/api/v1/tasks/reports%2F2026-12%2F1/revoke", json={}, headers=headers)
    assert [(c, a.get("task_id")) for c, a, _ in spy(guarded).calls] == [
        ("revoke", "reports/2026-12/1")]


def test_a_worker_named_with_slashes_is_found_and_controlled(guarded):
    """`celery -n` takes any name; one with "/" was listed, and its page and API were 404."""
    from helpers.control import spy

    add_worker(guarded.extensions["lookout.engine"], hostname="celery@eu/batch/1")
    client = guarded.test_client()
    headers = _bearer(guarded, "admin")
    for path in ("/workers/celery@eu%2Fbatch%2F1", "/workers/celery@eu/batch/1",
                 "/api/v1/workers/celery@eu%2Fbatch%2F1"):
        assert client.get(path, headers=headers).status_code == 200, path
    assert client.get("/api/v1/workers/celery@eu%2Fbatch%2F1",
                      headers=headers).get_json()["hostname"] == "celery@eu/batch/1"
    # Sent to that worker (then 503: this app's broker is unreachable on purpose).
    assert client.post("/api/v1/workers/celery@eu%2Fbatch%2F1/pool/grow", json={"n": 1},
                       headers=headers).status_code == 503
    assert client.post("/api/v1/workers/celery@eu%2Fbatch%2F1/shutdown", json={},
                       headers=headers).status_code == 503
    response = client.post("/api/v1/workers/celery@eu%2Fbatch%2F1/pool/explode", json={},
                           headers=headers)
    assert response.status_code == 404 and "pool/grow" in response.get_json()["error"]["message"]
    assert [(c, d) for c, _, d in spy(guarded).calls] == [
        ("pool_grow", ["celery@eu/batch/1"]), ("shutdown", ["celery@eu/batch/1"])]


@pytest.mark.parametrize("body, parameter", [
    ({"failure_group": "abc"}, "failure_group"),
    ({"failure_group": {"fingerprint": 7}}, "failure_group"),
    ({"failure_group": {"fingerprint": "abc", "extra": 1}}, "failure_group"),
    ({"failure_group": {"fingerprint": "abc", "window": "forever"}}, "failure_group.window"),
    ({"failure_group": {"fingerprint": "abc", "window": 5}}, "failure_group.window"),
    ({"failure_group": {"fingerprint": "abc"}, "filters": {"name": "x"}}, "filters"),
])
def test_a_bulk_retry_of_a_failure_group_names_what_is_wrong(guarded, body, parameter):
    response = guarded.test_client().post("/api/v1/tasks/retry", json=body,
                                          headers=_bearer(guarded, "admin"))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["parameter"] == parameter
