"""Socket caps (dashboard/live/limits.py) on the production layout: gunicorn's gthread
worker, real python-socketio clients.

One gunicorn for the module, with LOOKOUT_MAX_SOCKETS=3 and LOOKOUT_MAX_SOCKETS_PER_CLIENT=2;
each test leaves it with no socket open. Clients connect with python-socketio's defaults
(long-polling, then the websocket upgrade), as browsers do, so a handshake refused for a
full server still carries its reason. A gunicorn config hook shortens CLAIM_WITHIN to
half a second so squatters become evictable without a 10 s wait.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import socketio as socketio_client

from helpers.browser import free_port
from helpers.support import VENV_BIN, Process, wait_for
from lookout.core.store.db import make_engine, upgrade
from lookout.dashboard.auth.accounts import AccountStore
from lookout.dashboard.live.limits import LOGIN_REQUIRED
from lookout.dashboard.live.namespace import NAMESPACE

FULL = {"message": "this server already has its maximum of 3 live connections; "
                   "try again later"}
GUNICORN_CONF = """
def post_worker_init(worker):
    from lookout.dashboard.live import limits
    limits.CLAIM_WITHIN = 0.5
"""


class Server:
    """The running gunicorn, its tokens by name, and the clients a test opened."""

    def __init__(self, url: str, tokens: dict[str, str]):
        self.url, self.tokens = url, tokens
        self.open: list[socketio_client.Client] = []

    def connect(self, token: str | None = None, namespace: str = NAMESPACE):
        """(client, None) once connected, or (None, the connect_error data) if refused."""
        client = socketio_client.Client(reconnection=False)
        errors: list = []
        client.on("connect_error", errors.append, namespace=namespace)
        secret = self.tokens[token] if token else None
        try:  # the token goes in the header: the handshake is checked before any namespace
            client.connect(self.url, namespaces=[namespace], wait_timeout=5,
                           headers={"Authorization": f"Bearer {secret}"} if secret else {})
        except socketio_client.exceptions.ConnectionError:
            client.disconnect()
            return None, errors[0] if errors else None
        self.open.append(client)
        return client, None

    def close(self, client) -> None:
        self.open.remove(client)
        client.disconnect()

    def live(self) -> dict:
        """This web process's socket counts, from /healthz (503 here: no collector)."""
        request = urllib.request.Request(self.url + "/healthz", headers={
            "Authorization": f"Bearer {self.tokens['monitor']}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())["live"]
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())["live"]

    def held(self, count: int) -> None:
        wait_for(lambda: self.live()["sockets"] == count, 5, 0.02,
                 f"the server to hold {count} sockets")


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("socket-caps")
    database = f"sqlite:///{folder / 'lookout.db'}"
    upgrade(database)
    engine = make_engine(database)
    accounts = AccountStore(engine)
    tokens = {name: accounts.add_token(name, "viewer")[1]
              for name in ("monitor", "a", "b", "c", "d")}
    engine.dispose()
    (folder / "gunicorn.conf.py").write_text(GUNICORN_CONF)
    port = free_port()
    process = Process(
        [str(VENV_BIN / "gunicorn"), "-w", "1", "--threads", "20", "--graceful-timeout", "5",
         "-c", str(folder / "gunicorn.conf.py"), "-b", f"127.0.0.1:{port}",
         "lookout.dashboard.wsgi:app_from_environment()"],
        folder / "gunicorn.log",
        env={"LOOKOUT_DATABASE_URL": database, "LOOKOUT_SECRET_KEY": "test", "LOOKOUT_AUTH": "1",
             "LOOKOUT_MESSAGE_QUEUE": "", "LOOKOUT_CELERY_APP": "",
             "LOOKOUT_ALLOWED_HOSTS": "127.0.0.1", "LOOKOUT_MAX_SOCKETS": "3",
             "LOOKOUT_MAX_SOCKETS_PER_CLIENT": "2"})
    server = Server(f"http://127.0.0.1:{port}", tokens)
    try:
        wait_for(lambda: process.popen.poll() is None and server.live(), 30, 0.05,
                 "gunicorn up")
        yield server
    finally:
        code = process.stop()
        assert code == 0, process.output()[-3000:]


@pytest.fixture
def server(gunicorn) -> Iterator[Server]:
    yield gunicorn
    for client in list(gunicorn.open):
        gunicorn.close(client)
    gunicorn.held(0)


def test_global_cap_refuses_with_its_reason_and_admits_again_after_a_disconnect(server):
    first, _ = server.connect("a")
    assert first and server.connect("a")[0] and server.connect("b")[0]
    before = server.live()["refused"].get("server_full", 0)
    assert server.connect("c") == (None, FULL)
    live = server.live()
    assert (live["sockets"], live["authenticated"], live["max_sockets"]) == (3, 3, 3)
    assert live["refused"]["server_full"] == before + 1

    server.close(first)
    server.held(2)
    third, reason = server.connect("c")
    assert third is not None and reason is None
    assert third.call("subscribe", {"room": "tasks"}, namespace=NAMESPACE) == {
        "ok": True, "room": "tasks"}


def test_per_client_cap_refuses_that_client_only(server):
    assert server.connect("a")[0] and server.connect("a")[0]
    assert server.connect("a") == (None, {"message": (
        "too many live connections for token:a (at most 2); close other tabs or clients")})
    server.held(2)  # the refused client's session closed (else it fills the third slot)
    assert server.connect("b")[0] is not None  # another identity still gets in
    server.held(3)


def test_unauthenticated_clients_are_refused_and_squatters_evicted(server):
    """No identity, no socket: refused at the Engine.IO handshake, before any namespace,
    "/" included. A valid token that never joins /live still holds a thread: it counts,
    and once it has squatted CLAIM_WITHIN it is closed to make room for a newcomer."""
    before = server.live()["refused"].get("login", 0)
    assert server.connect() == (None, {"message": LOGIN_REQUIRED})
    assert server.connect(namespace="/") == (None, {"message": LOGIN_REQUIRED})
    assert server.live()["refused"]["login"] == before + 2
    server.held(0)

    squatters = [server.connect("d", namespace="/")[0] for _ in range(2)]
    assert all(squatters)
    assert server.connect("a")[0]
    wait_for(lambda: server.connect("b")[0], 5, 0.1, "a squatter to be evicted")
    # And the other one, once it too has squatted CLAIM_WITHIN (on a loaded machine it
    # connected a moment after the first).
    wait_for(lambda: server.connect("c")[0], 5, 0.1, "the other squatter to be evicted")
    wait_for(lambda: not any(s.connected for s in squatters), 5, 0.02, "squatters closed")
    live = server.live()
    assert (live["sockets"], live["authenticated"]) == (3, 3)
    assert server.connect("d") == (None, FULL)  # no one left to evict
