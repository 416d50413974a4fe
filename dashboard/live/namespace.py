"""Socket.IO for the live pages: the unbound extension and the /live namespace.

Browsers join rooms ("overview", "tasks", "schedules", "task:<id>", "worker:<hostname>") and receive
there the coalesced updates that the collector (collectors/push.py) emits a few times a
second, never one message per Celery event. Pages load their data from the JSON API; the socket only says
what changed since.
"""
from __future__ import annotations

from flask import current_app, request
from flask_socketio import (ConnectionRefusedError, Namespace, SocketIO, disconnect, join_room,
                            leave_room)

from lookout.collectors.push import NAMESPACE
from lookout.dashboard.live.limits import ENVIRON_KEY

STATIC_ROOMS = frozenset({"overview", "tasks", "schedules", "beat"})
ROOM_PREFIXES = ("task:", "worker:")
MAX_ROOM_LENGTH = 300
# A page needs two or three rooms; the cap stops one client from joining thousands.
MAX_ROOMS_PER_CLIENT = 20

socketio = SocketIO()


def valid_room(value: object) -> str | None:
    """The room name if a client may join it, else None (rooms are an allow-list)."""
    if not isinstance(value, str) or len(value) > MAX_ROOM_LENGTH:
        return None
    if value in STATIC_ROOMS:
        return value
    for prefix in ROOM_PREFIXES:
        key = value[len(prefix):]
        if value.startswith(prefix) and key and key.isprintable() and not key.isspace():
            return value
    return None


class LiveNamespace(Namespace):
    """One handler per client message: connect, subscribe, unsubscribe."""

    def on_connect(self, auth=None):
        # Authentication belongs here, not in before_request (which Socket.IO skips).
        # The auth package registers app.extensions["lookout.socket_auth"]: it returns
        # None for a connection without a valid session or token (the client then reports
        # a connect_error instead of retrying silently), else a re-check kept per socket.
        # Refusals raise Flask-SocketIO's ConnectionRefusedError, not the builtin one: only
        # its message reaches the client, as the connect_error data.
        authenticate = current_app.extensions["lookout.socket_auth"]
        check = authenticate(auth)
        if check is None:
            raise ConnectionRefusedError("login required")
        # Then the per-client cap (live/limits.py); the global one ran at the handshake.
        address = request.remote_addr or ""
        ident = check.identity
        if ident.kind == "noauth":  # everyone is the same identity: tell them by address
            key, who = ("address", address), address
        else:
            key, who = (ident.kind, ident.user_id or ident.token_id), ident.name
        refused = current_app.extensions["lookout.socket_limits"].claim(_eio_sid(), key, who)
        if refused is not None:
            raise ConnectionRefusedError(refused)
        sessions = current_app.extensions["lookout.live_sessions"]
        sessions.add(request.sid, check)
        app = current_app._get_current_object()
        sessions.start_sweeping(app, socketio.start_background_task, socketio.sleep)
        for start in app.extensions.get("lookout.live_starters", ()):
            start(app, socketio.start_background_task, socketio.sleep)

    def on_disconnect(self, reason=None):
        current_app.extensions["lookout.live_sessions"].remove(request.sid)
        current_app.extensions["lookout.socket_limits"].release(_eio_sid())

    def on_subscribe(self, data):
        """Join a room; the acknowledgement tells the page whether it worked."""
        sessions = current_app.extensions["lookout.live_sessions"]
        if not sessions.valid(request.sid):
            disconnect()
            return {"ok": False, "error": "login required"}
        room = valid_room((data or {}).get("room") if isinstance(data, dict) else data)
        if room is None:
            return {"ok": False, "error": "unknown room"}
        if not sessions.join(request.sid, room, MAX_ROOMS_PER_CLIENT):
            return {"ok": False, "error": "too many rooms"}
        join_room(room)
        return {"ok": True, "room": room}

    def on_unsubscribe(self, data):
        room = valid_room((data or {}).get("room") if isinstance(data, dict) else data)
        if room is None:
            return {"ok": False, "error": "unknown room"}
        current_app.extensions["lookout.live_sessions"].leave(request.sid, room)
        leave_room(room)
        return {"ok": True, "room": room}


def _eio_sid() -> str:
    """The Engine.IO session under this /live socket (what holds a server thread); the
    handshake hook (live/limits.py) put it in the environ. Flask-SocketIO's test client
    skips that hook: its socket stands for itself."""
    return request.environ.get(ENVIRON_KEY) or request.sid


# Registration only records the class; it binds to a server in socketio.init_app().
socketio.on_namespace(LiveNamespace(NAMESPACE))
