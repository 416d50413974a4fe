"""SocketLimits' bookkeeping on a clock of the test's own (the caps on a real server:
integration/test_socket_caps.py)."""
from __future__ import annotations

from lookout.dashboard.live import limits as limits_module
from lookout.dashboard.live.limits import SocketLimits

WAIT = limits_module.CLAIM_WITHIN


def test_caps_claims_and_evictions():
    now = [0.0]
    limits = SocketLimits(max_sockets=3, per_client=2, clock=lambda: now[0])
    for sid in "abc":
        assert limits.open(sid) == (None, [])
    assert limits.claim("a", ("user", 1), "ada") is None
    assert limits.claim("a", ("user", 1), "ada") is None  # idempotent
    assert limits.claim("b", ("user", 1), "ada") is None
    assert limits.claim("c", ("user", 1), "ada") == (
        "too many live connections for ada (at most 2); close other tabs or clients")
    assert limits.open("d")[0] == ("this server already has its maximum of 3 live "
                                   "connections; try again later")  # c unclaimed but young
    now[0] = WAIT
    assert limits.open("d") == (None, ["c"])  # c is overdue: closed to make room
    limits.release("b")  # b's /live socket ended; its session stays, unclaimed
    snapshot = limits.snapshot()
    assert (snapshot["sockets"], snapshot["authenticated"]) == (3, 1)
    assert limits.claim("b", ("user", 2), "otto") is None  # claimed again, by someone else
    limits.release("b")
    now[0] += WAIT
    assert limits.open("e") == (None, ["b"])  # b and d overdue; b the older
    for sid in "abcde":
        limits.close(sid)
        limits.close(sid)  # idempotent
    assert limits.snapshot()["sockets"] == 0 and not limits._per_key
    assert limits.refused == {"per_client": 1, "server_full": 1}


def test_sessions_the_handshake_hook_never_saw_are_counted_at_their_claim():
    limits = SocketLimits(max_sockets=1, per_client=5)
    assert limits.claim("t1", ("token", 1), "token:t") is None
    assert "maximum of 1" in limits.claim("t2", ("token", 1), "token:t")


def test_zero_means_no_cap():
    limits = SocketLimits(max_sockets=0, per_client=0)
    for i in range(100):
        assert limits.open(str(i)) == (None, [])
        assert limits.claim(str(i), ("token", 1), "token:t") is None
    assert limits.snapshot()["authenticated"] == 100


def test_room_cap_counts_the_rooms_each_socket_joined(make_app, sqlite_url):
    """LiveSessions keeps them: python-socketio's rooms() raced with concurrent connects."""
    from lookout.dashboard.live.namespace import MAX_ROOMS_PER_CLIENT, NAMESPACE, socketio

    app = make_app(sqlite_url, secret_key="test")
    client = socketio.test_client(app, namespace=NAMESPACE)

    def subscribe(room, event="subscribe"):
        return client.emit(event, {"room": room}, namespace=NAMESPACE, callback=True)

    for i in range(MAX_ROOMS_PER_CLIENT):
        assert subscribe(f"task:{i}")["ok"]
    assert subscribe("task:0")["ok"]  # already joined: not one more
    assert subscribe("tasks") == {"ok": False, "error": "too many rooms"}
    assert subscribe("task:0", "unsubscribe")["ok"]
    assert subscribe("tasks")["ok"]
    client.disconnect(NAMESPACE)
