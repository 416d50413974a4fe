"""The /live namespace and the coalescing publisher, through Flask-SocketIO's test client.

Summaries are the writer's own BatchSummary objects; the publisher emits through the
app's socketio exactly as in `lookout run`, and through a Redis message queue exactly as
a standalone collector does.
"""
from __future__ import annotations

from collections import Counter

import pytest

from helpers.support import wait_for
from lookout.collectors.push import LivePublisher
from lookout.collectors.writer import BatchSummary
from lookout.dashboard.live.namespace import NAMESPACE, socketio, valid_room


@pytest.fixture
def app(make_app, sqlite_url):
    return make_app(sqlite_url, secret_key="test")


def connect(app, *rooms: str):
    client = socketio.test_client(app, namespace=NAMESPACE)
    assert client.is_connected(NAMESPACE)
    for room in rooms:
        assert client.emit("subscribe", {"room": room}, namespace=NAMESPACE,
                           callback=True) == {"ok": True, "room": room}
    return client


def received(client, event: str | None = None):
    """Messages since the last call, by event name (or only `event`'s payloads)."""
    messages: dict[str, list[dict]] = {}
    for message in client.get_received(NAMESPACE):
        messages.setdefault(message["name"], []).append(message["args"][0])
    return messages if event is None else messages.get(event, [])


def task_row(task_id: str, state: str, **fields) -> dict:
    return {"uuid": task_id, "name": "sample.add", "state": state, "timestamp": 1.0,
            "args": "(1, 2)", "traceback": "long traceback", **fields}


def summary(tasks=(), workers=(), states=None, events=1, truncated=False) -> BatchSummary:
    return BatchSummary(events=events, states=Counter(states or {}), tasks=list(tasks),
                        tasks_truncated=truncated, workers=list(workers))


@pytest.mark.parametrize("room, ok", [
    ("overview", True), ("tasks", True), ("task:abc-123", True), ("worker:celery@host", True),
    ("task:", False), ("worker:", False), ("admin", False), ("task:a\nb", False),
    ("task:" + "x" * 400, False), (None, False), (42, False)])
def test_valid_room_is_an_allow_list(room, ok):
    assert (valid_room(room) is not None) is ok


def test_subscribe_and_unsubscribe(app):
    client = connect(app)
    assert client.emit("subscribe", {"room": "secret"}, namespace=NAMESPACE,
                       callback=True) == {"ok": False, "error": "unknown room"}
    assert client.emit("subscribe", "tasks", namespace=NAMESPACE, callback=True)["ok"]
    publisher = LivePublisher(socketio)
    publisher(summary(tasks=[task_row("t1", "STARTED")]))
    publisher.flush()
    assert len(received(client, "tasks")) == 1
    assert client.emit("unsubscribe", {"room": "tasks"}, namespace=NAMESPACE,
                       callback=True) == {"ok": True, "room": "tasks"}
    publisher(summary(tasks=[task_row("t1", "SUCCESS")]))
    publisher.flush()
    assert received(client, "tasks") == []
    client.disconnect(NAMESPACE)


def test_updates_are_coalesced_per_tick_and_reach_only_their_rooms(app):
    tasks_page = connect(app, "tasks")
    detail = connect(app, "task:t7")
    overview = connect(app, "overview", "worker:w1")
    publisher = LivePublisher(socketio)
    for i in range(1000):  # a thousand committed batches within one tick
        publisher(summary(tasks=[task_row(f"t{i % 10}", "STARTED" if i < 990 else "SUCCESS")],
                          workers=[{"hostname": f"w{i % 2}", "active": i}],
                          states={"STARTED": 1} if i < 990 else {"SUCCESS": 1}, events=2))
    assert publisher.flush() == 1 + 1 + 1 + 10 + 2  # beat, overview, tasks, 10 tasks, 2 workers

    seen = received(overview)
    tick = seen.pop("overview")
    assert len(tick) == 1
    assert tick[0]["events"] == 2000
    assert tick[0]["counts"] == {"STARTED": 990, "SUCCESS": 10}
    assert {w["hostname"]: w["active"] for w in tick[0]["workers"]} == {"w0": 998, "w1": 999}
    assert [m["worker"]["hostname"] for m in seen.pop("worker")] == ["w1"]
    assert seen == {}

    tasks_messages = received(tasks_page, "tasks")
    assert len(tasks_messages) == 1
    rows = {row["uuid"]: row for row in tasks_messages[0]["tasks"]}
    assert len(rows) == 10 and all(row["state"] == "SUCCESS" for row in rows.values())
    assert "traceback" not in rows["t7"]  # live rows are slim; the page asks the API for more

    seen = received(detail)
    assert [m["task"]["uuid"] for m in seen.pop("task")] == ["t7"]
    assert seen == {}  # nothing else reached the task's room
    for client in (tasks_page, detail, overview):
        client.disconnect(NAMESPACE)


def test_row_caps_keep_the_newest_and_say_so(app):
    client = connect(app, "tasks")
    publisher = LivePublisher(socketio, max_rows=5, max_task_rooms=20)
    publisher(summary(tasks=[task_row(f"t{i}", "RECEIVED", args="x" * 1000)
                             for i in range(50)]))
    assert publisher.flush() == 1 + 1 + 1 + 20  # beat, overview, tasks, 20 task rooms
    [message] = received(client, "tasks")
    assert [row["uuid"] for row in message["tasks"]] == [f"t{i}" for i in range(45, 50)]
    assert message["truncated"] is True
    assert len(message["tasks"][0]["args"]) == 200
    client.disconnect(NAMESPACE)


def test_rates_are_averaged_so_uneven_commits_do_not_zigzag(app):
    client = connect(app, "overview")
    now = [100.0]
    publisher = LivePublisher(socketio, clock=lambda: now[0])
    rates = []
    for tick in range(8):  # a commit of 1000 events every other tick (every second)
        now[0] += 0.5
        if tick % 2 == 0:
            publisher(summary(states={"SUCCESS": 250}, events=1000))
        publisher.flush()
        rates.append(received(client, "overview")[0])
    steady = [(m["events_per_second"], m["tasks_per_second"]) for m in rates[4:]]
    assert steady == [(1000.0, 250.0)] * 4
    client.disconnect(NAMESPACE)


def test_a_collector_that_takes_the_live_lease_over_reports_the_rate_at_once(app):
    """The pair's other collector pushed until now; this one heard the same events and
    dropped them. Its first rates must be the rate (200/s), not a dip to 50/s."""
    client = connect(app, "overview")
    now = [100.0]
    holder = [False]
    publisher = LivePublisher(socketio, clock=lambda: now[0])
    publisher.gate = lambda: holder[0]
    rates = []
    for tick in range(12):
        now[0] += 0.5
        holder[0] = tick >= 8  # the other collector died; the lease moved here
        publisher(summary(states={"SUCCESS": 25}, events=100))
        if publisher.flush():
            rates.append(received(client, "overview")[0]["events_per_second"])
    assert rates == [200.0] * 4
    client.disconnect(NAMESPACE)


def test_push_thread_ticks_and_flushes_on_stop(app):
    client = connect(app, "overview", "tasks")
    with LivePublisher(socketio, interval=0.05) as publisher:
        wait_for(lambda: received(client, "overview"), 5, message="a periodic overview tick")
        publisher(summary(tasks=[task_row("last", "SUCCESS")], states={"SUCCESS": 1}))
    # Stopping flushed what the writer handed over after the last tick.
    assert [row["uuid"] for m in received(client, "tasks") for row in m["tasks"]] == ["last"]
    client.disconnect(NAMESPACE)


def test_socket_auth_hook_refuses_connections(app):
    app.extensions["lookout.socket_auth"] = lambda auth: None
    client = socketio.test_client(app, namespace=NAMESPACE)
    assert not client.is_connected(NAMESPACE)


@pytest.mark.slow
@pytest.mark.parametrize("host, ok", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                      ("0.0.0.0", False), ("10.1.2.3", False),
                                      ("example.com", False)])
def test_builtin_server_only_on_loopback(host, ok):
    from lookout.dashboard.server import is_loopback

    assert is_loopback(host) is ok


def test_serve_refuses_a_public_address_and_names_gunicorn(caplog):
    from lookout.core.config import Settings
    from lookout.dashboard.server import serve

    assert serve(Settings(host="0.0.0.0"), with_collector=False) == 2
    assert "gunicorn -w 1 --threads 600" in caplog.text


def test_with_a_message_queue_task_rows_go_only_to_watched_rooms(redis_broker):
    """Each emit through Redis is a round trip: a standalone collector emits a task's row
    only when some web process has recorded its room as joined (collectors/watched.py),
    at subscribe and on every sweep; a room nobody refreshes drops out after the TTL.
    (An app with a message queue cannot be built here: Flask-SocketIO's test client
    refuses one. tests/integration/test_live_processes.py runs the real processes.)"""
    import uuid

    from lookout.collectors import watched as watched_module
    from lookout.collectors.watched import WatchedTasks
    from lookout.dashboard.live.sessions import LiveSessions

    channel = f"watched-test-{uuid.uuid4().hex}"
    now = [1_000_000.0]
    writer = WatchedTasks(redis_broker, channel, clock=lambda: now[0])
    reader = WatchedTasks(redis_broker, channel, clock=lambda: now[0])
    sessions = LiveSessions(lambda sid: None, writer)
    try:
        sessions.add("sid-1", lambda: True)
        assert sessions.join("sid-1", "task:t7", 20) and sessions.join("sid-1", "tasks", 20)
        assert reader.current() == {"t7"}

        class Emits:
            def __init__(self):
                self.rooms = []

            def emit(self, event, data, to, namespace):
                self.rooms.append(to)

        emits = Emits()
        publisher = LivePublisher(emits)
        publisher.watched = reader
        publisher(summary(tasks=[task_row(f"t{i}", "STARTED") for i in range(10)]))
        publisher.flush()
        assert [r for r in emits.rooms if r.startswith("task:")] == ["task:t7"]

        now[0] += watched_module.TTL + 1  # not refreshed: nobody watches any more
        assert reader.current() == set()
        sessions.sweep()  # the socket still holds the room: the sweep records it again
        assert reader.current() == {"t7"}
        sessions.leave("sid-1", "task:t7")
        now[0] += watched_module.TTL + 1
        sessions.sweep()
        assert reader.current() == set()
        broken = WatchedTasks("redis://127.0.0.1:1/0", "nowhere")
        assert broken.current() is None  # Redis away: emit to every room, as before
        broken.close()
        on_server_time = WatchedTasks(redis_broker, channel + "-server-time")
        on_server_time.mark({"t9"})  # scored by Redis's TIME: web and collector clocks
        assert on_server_time.current() == {"t9"}  # need not agree
        on_server_time.redis.delete(on_server_time.key)
        on_server_time.close()
        # Flask-SocketIO's Kombu queue (AMQP) has no record: every room, as before.
        assert watched_module.watched_tasks_for("amqp://guest@127.0.0.1//", "c") is None
    finally:
        reader.redis.delete(reader.key)
        reader.close()
        writer.close()
