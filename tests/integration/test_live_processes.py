"""Collector and web as separate processes, linked by the Socket.IO message queue."""
from __future__ import annotations

import socketio as socketio_client

from helpers.browser import free_port, get_json
from helpers.support import VENV_BIN, Process, wait_for
from helpers.workers import launch_worker, send, task_client, unique
from lookout.collectors.push import NAMESPACE


def test_standalone_collector_pushes_to_lookout_web_via_redis(redis_broker, sqlite_url,
                                                             tmp_path):
    """`lookout collect` and `lookout web` as separate processes, linked by the message
    queue: a task run by a real worker reaches a Socket.IO client of the web process."""
    port = free_port()
    lookout = str(VENV_BIN / "lookout")
    common = ["--database", sqlite_url, "--message-queue", redis_broker]
    worker = launch_worker(tmp_path, redis_broker)
    collector = Process([lookout, "collect", "--broker", redis_broker, *common],
                        tmp_path / "collect.log",
                        env={"LOOKOUT_COLLECTOR_NAME": unique("live-test")})
    web = Process([lookout, "web", "--port", str(port), "--no-auth", *common],
                  tmp_path / "web.log")
    url = f"http://127.0.0.1:{port}"
    client = socketio_client.Client()
    rows: list[dict] = []
    own_room: list[dict] = []
    client.on("tasks", lambda message: rows.extend(message["tasks"]), namespace=NAMESPACE)
    client.on("task", lambda message: own_room.append(message["task"]), namespace=NAMESPACE)
    watched_id = unique("watched")
    try:
        # Healthy means the web process sees the collector's status row as connected.
        wait_for(lambda: get_json(url + "/healthz")[0] == 200, 60, message="both up")
        client.connect(url, namespaces=[NAMESPACE], transports=["websocket"])
        assert client.call("subscribe", {"room": "tasks"}, namespace=NAMESPACE)["ok"]
        # A task page: the web process records the room, so the collector emits to it.
        assert client.call("subscribe", {"room": f"task:{watched_id}"},
                           namespace=NAMESPACE)["ok"]
        with task_client(redis_broker) as app:
            task_id = send(app, worker, "sample.add", 2, 3)
            app.send_task("sample.add", args=(4, 5), task_id=watched_id, queue=worker.queue)
        wait_for(lambda: any(r["uuid"] == task_id and r["state"] == "SUCCESS" for r in rows),
                 30, message="the task's rows pushed through Redis")
        wait_for(lambda: any(r["state"] == "SUCCESS" for r in own_room), 30,
                 message="the watched task's room got its row")
        assert {r["uuid"] for r in own_room} == {watched_id}
    finally:
        client.disconnect()
        web_code, collector_code = web.stop(), collector.stop()
        worker.process.stop()
    assert web_code == 0, web.output()[-2000:]
    assert collector_code == 0, collector.output()[-2000:]


def test_two_deployments_on_one_redis_never_see_each_other(redis_broker, tmp_path):
    """Pub/sub ignores database numbers: each deployment's channel is named after its
    store, so A's task rows (args included) never reach B's browsers."""
    from lookout.collectors.message_queue import external_emitter
    from lookout.collectors.live_channel import live_channel
    from lookout.core.config import Settings
    from lookout.core.store.db import make_engine, upgrade

    lookout = str(VENV_BIN / "lookout")
    webs, clients, received = {}, {}, {"a": [], "b": []}
    try:
        for name in ("a", "b"):
            url = f"sqlite:///{tmp_path / name}.db"
            upgrade(url)
            port = free_port()
            webs[name] = (url, f"http://127.0.0.1:{port}", Process(
                [lookout, "web", "--port", str(port), "--no-auth", "--database", url,
                 "--message-queue", redis_broker], tmp_path / f"web-{name}.log"))
        for name, (_, base, _) in webs.items():
            wait_for(lambda: get_json(base + "/api/v1/tasks")[0] == 200, 60,
                     message=f"web {name} up")
            client = clients[name] = socketio_client.Client()
            client.on("tasks", lambda message, name=name: received[name].append(message),
                      namespace=NAMESPACE)
            client.connect(base, namespaces=[NAMESPACE], transports=["websocket"])
            assert client.call("subscribe", {"room": "tasks"}, namespace=NAMESPACE)["ok"]
        engine = make_engine(webs["a"][0])
        channel = live_channel(Settings.load({}), engine)
        engine.dispose()
        emitter = external_emitter(redis_broker, channel)
        secret = unique("args-of-a")

        def delivered():
            emitter.emit("tasks", {"tasks": [{"uuid": secret, "args": secret}]},
                         to="tasks", namespace=NAMESPACE)
            return received["a"]
        wait_for(delivered, 20, interval=0.5, message="deployment A's update reaches A")
        assert received["b"] == [], received["b"]  # and, after A got several, B got none
        assert secret in str(received["a"])
    finally:
        for client in clients.values():
            client.disconnect()
        for _, _, process in webs.values():
            process.stop()
