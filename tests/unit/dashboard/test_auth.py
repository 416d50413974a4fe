"""Access control: who may do what, and what a refused request must not do (send anything).

The app is real and talks to the session's Redis; a spy sits on the broadcast path, so
"refused" is proven by zero messages sent, not by a mock of the thing under test.
"""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from helpers.control import PASSWORD, app_with_users, audit_records, csrf_from, login, spy
from helpers.factories import add_task, add_worker
from lookout.core.store.models_auth import ApiToken, User

WORKER = "celery@auth-test"


@pytest.fixture
def app(sqlite_url, redis_broker):
    app = app_with_users(sqlite_url, redis_broker)
    engine = app.extensions["lookout.engine"]
    add_worker(engine, WORKER)
    yield app
    engine.dispose()


@pytest.fixture
def running_task(app):
    return add_task(app.extensions["lookout.engine"], state="STARTED", name="sample.sleep",
                    worker=WORKER)["uuid"]


def test_everything_but_login_needs_authentication(app, running_task):
    client = app.test_client()
    assert client.get("/api/v1/tasks").status_code == 401
    assert client.get("/api/v1/audit").status_code == 401
    page = client.get("/tasks")
    assert page.status_code == 302 and page.location.startswith("/login?next=/tasks")
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").status_code in (200, 503)  # public for load balancers
    response = client.post(f"/api/v1/tasks/{running_task}/revoke", json={})
    assert response.status_code == 401
    assert spy(app).calls == []


def test_login_sets_a_hardened_session_cookie_and_logout_ends_it(app):
    client = app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": "vic", "password": PASSWORD,
                                           "csrf_token": token, "next": "https://evil.example/"})
    assert response.status_code == 302 and response.location == "/"  # no open redirect
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/api/v1/tasks").status_code == 200
    me = client.get("/api/v1/me").get_json()
    assert (me["name"], me["role"], me["kind"]) == ("vic", "viewer", "user")
    csrf = csrf_from(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/api/v1/tasks").status_code == 401


def test_wrong_password_and_login_without_csrf_token_are_refused(app):
    client = app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    bad = client.post("/login", data={"username": "vic", "password": "nope",
                                      "csrf_token": token})
    assert bad.status_code == 401 and "wrong username or password" in bad.get_data(as_text=True)
    unknown = client.post("/login", data={"username": "nobody", "password": "nope",
                                          "csrf_token": token})
    assert unknown.status_code == 401
    forged = client.post("/login", data={"username": "vic", "password": PASSWORD})
    assert forged.status_code == 403
    assert client.get("/api/v1/tasks").status_code == 401
    outcomes = [(r["actor"], r["outcome"]) for r in audit_records(app, action="login")]
    assert ("vic", "refused") in outcomes and ("nobody", "refused") in outcomes


def test_passwords_and_tokens_are_stored_hashed(app):
    accounts = app.extensions["lookout.accounts"]
    _, secret = accounts.add_token("ci", "operator")
    with app.extensions["lookout.engine"].connect() as conn:
        stored = conn.execute(select(User.password_hash).where(User.username == "otto")).scalar()
        digest = conn.execute(select(ApiToken.token_hash).where(ApiToken.name == "ci")).scalar()
    assert stored.startswith("scrypt:") and PASSWORD not in stored
    assert secret not in digest and len(digest) == 64


def test_viewer_may_read_but_not_control(app, running_task):
    client = app.test_client()
    csrf = login(client, "vic")
    assert client.get(f"/api/v1/tasks/{running_task}").status_code == 200
    headers = {"X-CSRF-Token": csrf}
    for path, body in [(f"/api/v1/tasks/{running_task}/revoke", {}),
                       ("/api/v1/rate-limits", {"task_name": "sample.sleep", "rate_limit": "1/m"}),
                       (f"/api/v1/workers/{WORKER}/pool/grow", {"n": 1}),
                       (f"/api/v1/workers/{WORKER}/shutdown", {})]:
        assert client.post(path, json=body, headers=headers).status_code == 403, path
    assert client.get("/api/v1/audit").status_code == 403
    assert "task-controls" not in client.get(f"/tasks/{running_task}").get_data(as_text=True)
    assert spy(app).calls == []


def test_read_only_refuses_every_control_action(sqlite_url, redis_broker):
    app = app_with_users(sqlite_url, redis_broker, read_only=True)
    engine = app.extensions["lookout.engine"]
    add_worker(engine, WORKER)
    task = add_task(engine, state="STARTED", name="sample.sleep")["uuid"]
    client = app.test_client()
    csrf = login(client, "ada")
    for path in [f"/api/v1/tasks/{task}/revoke", "/api/v1/tasks/revoke", "/api/v1/rate-limits",
                 "/api/v1/time-limits", f"/api/v1/workers/{WORKER}/pool/shrink",
                 f"/api/v1/workers/{WORKER}/consumers/add"]:
        response = client.post(path, json={"dry_run": True}, headers={"X-CSRF-Token": csrf})
        assert response.status_code == 403 and "read-only" in response.get_json()["error"]["message"]
    assert "task-controls" not in client.get(f"/tasks/{task}").get_data(as_text=True)
    assert spy(app).calls == []
    engine.dispose()


def test_a_scripts_post_without_token_under_no_auth_is_told_to_send_one(sqlite_url,
                                                                        redis_broker):
    """--no-auth still refuses a POST without a session or token (a cross-site form would
    otherwise control the workers); the refusal told a script to "reload the page"."""
    app = app_with_users(sqlite_url, redis_broker, auth=False)
    engine = app.extensions["lookout.engine"]
    add_worker(engine, WORKER)
    task = add_task(engine, state="STARTED", name="sample.sleep", worker=WORKER)["uuid"]
    client = app.test_client()
    for path in (f"/api/task/revoke/{task}", f"/api/v1/tasks/{task}/revoke"):
        response = client.post(path)
        assert response.status_code == 403, path
        message = response.get_json()["error"]["message"]
        assert message.startswith("no session and no API token: a script sends "
                                  "Authorization: Bearer <token>"), message
    assert spy(app).calls == []
    secret = app.extensions["lookout.accounts"].add_token("script", "operator",
                                                          created_by="test")[1]
    sent = client.post(f"/api/task/revoke/{task}",
                       headers={"Authorization": f"Bearer {secret}"})
    assert sent.status_code == 200 and len(spy(app).calls) == 1
    engine.dispose()


def test_invalid_or_unknown_targets_send_nothing(app, running_task):
    client = app.test_client()
    headers = {"X-CSRF-Token": login(client, "otto")}
    cases = [
        (f"/api/v1/tasks/{'no-such-task'}/revoke", {}, 404),
        (f"/api/v1/tasks/{running_task}/revoke", {"terminate": True, "signal": "SIGBOGUS"}, 400),
        ("/api/v1/rate-limits", {"task_name": "sample.sleep", "rate_limit": "fast"}, 400),
        ("/api/v1/rate-limits", {"task_name": "no.such.task", "rate_limit": "1/m"}, 404),
        ("/api/v1/rate-limits", {"task_name": "sample.sleep", "rate_limit": "1/m",
                                 "destination": ["celery@nowhere"]}, 404),
        ("/api/v1/time-limits", {"task_name": "sample.sleep", "soft": 10, "hard": 5}, 400),
        ("/api/v1/workers/celery@nowhere/pool/grow", {"n": 1}, 404),
        (f"/api/v1/workers/{WORKER}/pool/grow", {"n": -3}, 400),
        (f"/api/v1/workers/{WORKER}/consumers/add", {"queue": "bad queue!"}, 400),
        (f"/api/v1/workers/{WORKER}/no/such/command", {}, 404),
    ]
    for path, body, status in cases:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == status, (path, body, response.get_json())
    assert spy(app).calls == []
    assert len(audit_records(app, outcome="invalid")) == len(cases)


def test_cross_site_post_with_a_valid_session_is_refused(app, running_task):
    client = app.test_client()
    csrf = login(client, "otto")
    path = f"/api/v1/tasks/{running_task}/revoke"
    # The attacker's page cannot read the token, so it has none ...
    assert client.post(path, json={}).status_code == 403
    # ... and even with one, the browser says where the request comes from.
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}):
        response = client.post(path, json={}, headers={"X-CSRF-Token": csrf, **headers})
        assert response.status_code == 403, headers
    assert spy(app).calls == []
    assert {r["outcome"] for r in audit_records(app, action="task.revoke")} == {"refused"}


def test_bearer_tokens_carry_their_role(app, running_task):
    accounts = app.extensions["lookout.accounts"]
    _, viewer = accounts.add_token("dash", "viewer")
    token_id, operator = accounts.add_token("ops-script", "operator")
    client = app.test_client()
    assert client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {viewer}"}
                      ).status_code == 200
    path = "/api/v1/workers/celery@nowhere/pool/grow"
    assert client.post(path, json={}, headers={"Authorization": f"Bearer {viewer}"}
                       ).status_code == 403
    # No CSRF token needed: a bearer token is no ambient credential a page could ride on.
    assert client.post(path, json={}, headers={"Authorization": f"Bearer {operator}"}
                       ).status_code == 404
    assert audit_records(app)[0]["actor"] == "token:ops-script"
    accounts.revoke_token(token_id)
    assert client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {operator}"}
                      ).status_code == 401
    assert client.get("/api/v1/tasks", headers={"Authorization": "Bearer lk_guess"}
                      ).status_code == 401
    assert spy(app).calls == []


def test_only_admins_manage_users_and_tokens(app):
    client = app.test_client()
    headers = {"X-CSRF-Token": login(client, "otto")}
    assert client.post("/api/v1/users", json={"username": "eve", "password": "x" * 12,
                                              "role": "admin"}, headers=headers).status_code == 403
    assert client.get("/api/v1/tokens").status_code == 403
    admin = app.test_client()
    headers = {"X-CSRF-Token": login(admin, "ada")}
    created = admin.post("/api/v1/users", json={"username": "eve", "password": "x" * 12,
                                                "role": "operator"}, headers=headers)
    assert created.status_code == 201
    token = admin.post("/api/v1/tokens", json={"name": "nightly", "role": "viewer"},
                       headers=headers).get_json()
    assert token["token"].startswith("lk_")
    listed = admin.get("/api/v1/tokens").get_json()["items"]
    assert [t["name"] for t in listed] == ["nightly"] and "token" not in listed[0]
    record = audit_records(app, action="user.add")[0]
    assert record["parameters"] == {"role": "operator"}  # never the password
    login(app.test_client(), "eve", "x" * 12)
    assert client.get("/admin").status_code == 403
    assert 'id="token-form"' in admin.get("/admin").get_data(as_text=True)


def test_security_headers_and_no_cors(app):
    client = app.test_client()
    login(client, "vic")
    response = client.get("/tasks", headers={"Origin": "https://evil.example"})
    csp = response.headers["Content-Security-Policy"]
    script_src = next(part for part in csp.split(";") if part.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'self'" in script_src
    # The bundled Chart.js and Socket.IO builds: no other host may serve scripts.
    assert "http" not in script_src
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Access-Control-Allow-Origin" not in response.headers
    api = client.get("/api/v1/tasks", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in api.headers


def test_get_never_changes_state(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("control.") or rule.endpoint in (
                "auth.logout", "accounts.add_user", "accounts.add_token",
                "accounts.revoke_token"):
            assert "GET" not in rule.methods, rule


def test_socket_io_needs_a_session_or_token(app):
    from lookout.dashboard.live.namespace import NAMESPACE, socketio

    anonymous = socketio.test_client(app, namespace=NAMESPACE)
    assert not anonymous.is_connected(NAMESPACE)
    client = app.test_client()
    login(client, "vic")
    member = socketio.test_client(app, namespace=NAMESPACE, flask_test_client=client)
    assert member.is_connected(NAMESPACE)
    member.disconnect(NAMESPACE)
    cross = socketio.test_client(app, namespace=NAMESPACE, flask_test_client=client,
                                 headers={"Origin": "https://evil.example"})
    assert not cross.is_connected(NAMESPACE)
    _, secret = app.extensions["lookout.accounts"].add_token("live", "viewer")
    script = socketio.test_client(app, namespace=NAMESPACE, auth={"token": secret})
    assert script.is_connected(NAMESPACE)
    script.disconnect(NAMESPACE)


def test_no_auth_warns_loudly_but_keeps_csrf(sqlite_url, redis_broker, caplog):
    with caplog.at_level(logging.WARNING, logger="lookout.auth"):
        app = app_with_users(sqlite_url, redis_broker, auth=False)
    assert "AUTHENTICATION IS OFF" in caplog.text
    client = app.test_client()
    page = client.get("/tasks").get_data(as_text=True)
    assert 'id="no-auth-banner"' in page
    # A malicious page could still make the user's browser post to localhost.
    response = client.post("/api/v1/workers/celery@nowhere/pool/grow", json={})
    assert response.status_code == 403
    assert client.post("/api/v1/workers/celery@nowhere/pool/grow", json={},
                       headers={"X-CSRF-Token": csrf_from(page)}).status_code == 404
    assert spy(app).calls == []
    app.extensions["lookout.engine"].dispose()


@pytest.mark.parametrize("settings, message", [
    ({"read_only": True}, "read-only"),
    ({"auth": False}, "authentication is off"),
])
def test_read_only_and_no_auth_never_change_users_or_tokens(sqlite_url, redis_broker,
                                                            settings, message):
    app = app_with_users(sqlite_url, redis_broker, **settings)
    try:
        client = app.test_client()
        csrf = login(client, "ada") if app.config["LOOKOUT"].auth else \
            csrf_from(client.get("/tasks").get_data(as_text=True))
        headers = {"X-CSRF-Token": csrf}
        for method, path, body in (
                ("post", "/api/v1/users", {"username": "mallory", "password": "x" * 12}),
                ("post", "/api/v1/tokens", {"name": "forever", "role": "admin"}),
                ("delete", "/api/v1/tokens/1", None)):
            response = getattr(client, method)(path, json=body, headers=headers)
            assert response.status_code == 403, (path, response.get_json())
            assert message in response.get_json()["error"]["message"]
        engine = app.extensions["lookout.engine"]
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(ApiToken)) == 0
            assert conn.scalar(select(User.id).where(User.username == "mallory")) is None
    finally:
        app.extensions["lookout.engine"].dispose()


@pytest.mark.parametrize("allowed, host, ok", [
    ("", "localhost", True), ("", "127.0.0.1:5555", True), ("", "[::1]:5555", True),
    ("", "evil.example:5555", False), ("", "127.0.0.1.evil.example", False),
    ("lookout.example.com", "lookout.example.com", True),
    ("lookout.example.com", "LOOKOUT.example.com:443", True),
    # Loopback names stay allowed once the public name is set (a rebinding page sends its
    # own name): the machine's own curl and the default loopback /metrics keep working.
    ("lookout.example.com", "localhost", True),
    ("lookout.example.com", "127.0.0.1:5555", True),
    ("lookout.example.com", "10.0.0.5:5555", False),
    ("*", "anything.example", True),
])
def test_only_allowed_host_names_are_answered(make_app, sqlite_url, allowed, host, ok):
    client = make_app(sqlite_url, allowed_hosts=allowed).test_client()
    for path in ("/tasks", "/api/v1/tasks", "/socket.io/?EIO=4&transport=polling",
                 "/metrics"):
        response = client.get(path, headers={"Host": host})
        assert (response.status_code != 400) == ok, (path, response.status_code)
        if not ok:
            assert "not allowed here" in response.get_json()["error"]["message"]


def test_probes_answer_any_host_with_the_verdict_only(make_app, sqlite_url):
    """A load balancer's or Kubernetes' health check sends the pod's address as Host."""
    client = make_app(sqlite_url, allowed_hosts="lookout.example.com",
                      auth=True).test_client()
    for path in ("/readyz", "/healthz"):
        response = client.get(path, headers={"Host": "10.0.0.5:5555"})
        assert response.status_code in (200, 503), (path, response.status_code)
        assert "ready" in response.get_json() or set(response.get_json()) == {
            "status", "healthy", "time"}, response.get_json()
    response = client.get("/healthcheck", headers={"Host": "10.0.0.5:5555"})
    assert (response.status_code, response.get_data(as_text=True)) == (200, "OK")
    assert client.get("/tasks", headers={"Host": "10.0.0.5:5555"}).status_code == 400


def test_logout_ends_every_copy_of_the_session_and_its_sockets(app):
    from lookout.dashboard.live.namespace import NAMESPACE, socketio

    client = app.test_client()
    login(client, "vic")
    copy = app.test_client()  # a cookie copied before logout, e.g. from another machine
    copy.set_cookie("lookout_session", client.get_cookie("lookout_session").value)
    assert copy.get("/api/v1/tasks").status_code == 200
    socket = socketio.test_client(app, namespace=NAMESPACE, flask_test_client=client)
    assert socket.is_connected(NAMESPACE)
    csrf = csrf_from(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert copy.get("/api/v1/tasks").status_code == 401
    assert not socket.is_connected(NAMESPACE)
    login(client, "vic")  # a new login works as before
    assert client.get("/api/v1/tasks").status_code == 200


def test_revoked_tokens_and_ended_sessions_lose_their_sockets(app):
    from lookout.dashboard.live.namespace import NAMESPACE, socketio

    accounts = app.extensions["lookout.accounts"]
    token_id, secret = accounts.add_token("live", "viewer")
    script = socketio.test_client(app, namespace=NAMESPACE, auth={"token": secret})
    admin = app.test_client()
    csrf = login(admin, "ada")
    assert admin.delete(f"/api/v1/tokens/{token_id}",
                        headers={"X-CSRF-Token": csrf}).status_code == 200
    assert not script.is_connected(NAMESPACE)  # at once, in this process

    browser = app.test_client()
    login(browser, "otto")
    socket = socketio.test_client(app, namespace=NAMESPACE, flask_test_client=browser)
    otto = next(u for u in accounts.list_users() if u["username"] == "otto")
    accounts.end_sessions(otto["id"])  # as another web process's logout would
    reply = socket.emit("subscribe", {"room": "tasks"}, namespace=NAMESPACE, callback=True)
    assert reply == {"ok": False, "error": "login required"}
    assert not socket.is_connected(NAMESPACE)

    login(browser, "otto")
    later = socketio.test_client(app, namespace=NAMESPACE, flask_test_client=browser)
    accounts.end_sessions(otto["id"])
    assert app.extensions["lookout.live_sessions"].sweep() == 1  # the periodic check
    assert not later.is_connected(NAMESPACE)


def test_healthz_tells_anonymous_callers_only_the_verdict(app):
    from helpers.factories import set_collector_status

    set_collector_status(app.extensions["lookout.engine"], broker="redis://secret-host:6379/0")
    anonymous = app.test_client().get("/healthz")
    assert anonymous.status_code == 200
    assert set(anonymous.get_json()) == {"status", "healthy", "time"}
    assert "secret-host" not in anonymous.get_data(as_text=True)
    client = app.test_client()
    login(client, "vic")
    detail = client.get("/healthz").get_json()
    assert detail["collectors"][0]["broker"] == "redis://secret-host:6379/0"


def test_socket_io_responses_carry_security_headers(app):
    response = app.test_client().get("/socket.io/?EIO=4&transport=polling")
    for name, value in (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                        ("Cache-Control", "no-store")):
        assert response.headers.get(name) == value, name


def test_cookies_are_secure_on_https_and_proxies_are_believed_only_when_trusted(tmp_path):
    from lookout.core.store.db import upgrade

    def app_on(name, **settings):
        url = f"sqlite:///{tmp_path / name}"
        upgrade(url)
        return app_with_users(url, "memory://", **settings)

    def login_cookie(app, **headers):
        client = app.test_client()
        token = csrf_from(client.get("/login", headers=headers).get_data(as_text=True))
        response = client.post("/login", headers=headers, data={
            "username": "ada", "password": PASSWORD, "csrf_token": token, "next": "/"})
        assert response.status_code == 302, response.get_data(as_text=True)[:200]
        return response.headers["Set-Cookie"]

    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    plain = app_on("plain.db")
    assert "Secure" not in login_cookie(plain, **forwarded)  # no proxy trusted
    assert audit_records(plain, action="login")[0]["remote_addr"] == "127.0.0.1"
    proxied = app_on("proxied.db", trusted_proxies=1)
    assert "Secure" in login_cookie(proxied, **forwarded)
    assert audit_records(proxied, action="login")[0]["remote_addr"] == "203.0.113.7"
    assert "Secure" not in login_cookie(proxied)  # plain HTTP through the proxy
    forced = app_on("forced.db", secure_cookies=True)
    assert "Secure" in login_cookie(forced)


def test_a_socket_connect_reuses_the_identity_its_handshake_resolved(app):
    """One store read per connection for the token (handshake), not one more at connect;
    a different token at connect is resolved on its own."""
    from werkzeug.test import EnvironBuilder

    from lookout.dashboard.auth import guard

    accounts = app.extensions["lookout.accounts"]
    _, secret = accounts.add_token("live-script", "viewer")
    _, other = accounts.add_token("other-script", "operator")
    reads = []
    real = accounts.token_identity
    accounts.token_identity = lambda token: reads.append(token) or real(token)
    try:
        environ = EnvironBuilder(path="/socket.io/", base_url="http://127.0.0.1/",
                                 headers={"Authorization": f"Bearer {secret}"}).get_environ()
        assert guard.handshake_identity(app, environ).role == "viewer"
        with app.request_context(environ):
            assert guard.socket_auth(None).identity.role == "viewer"
            assert reads == [secret]
            assert guard.socket_auth({"token": other}).identity.role == "operator"
            assert reads == [secret, other]
    finally:
        del accounts.token_identity
