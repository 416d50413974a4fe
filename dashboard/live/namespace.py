"""Socket.IO for the live pages: the unbound extension and the /live namespace.

Browsers join rooms ("overview", "tasks", "schedules", "task:<id>", "worker:<hostname>") and receive
there the coalesced updates that the collector (collectors/push.py) emits a few times a
second, never one message per Celery event. Pages load their data from the JSON API; the socket only says
what changed since.
"""
from __future__ import annotations

from flask import current_app, request
from flask_socketio import Namespace, SocketIO, disconnect, join_room, leave_room, rooms

from lookout.collectors.push import NAMESPACE

STATIC_ROOMS = frozenset({"overview", "tasks", "schedules"})
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
        authenticate = current_app.extensions["lookout.socket_auth"]
        check = authenticate(auth)
        if check is None:
            raise ConnectionRefusedError("login required")
        sessions = current_app.extensions["lookout.live_sessions"]
        sessions.add(request.sid, check)
        app = current_app._get_current_object()
        sessions.start_sweeping(app, socketio.start_background_task, socketio.sleep)
        for start in app.extensions.get("lookout.live_starters", ()):
            start(app, socketio.start_background_task, socketio.sleep)

    def on_disconnect(self, reason=None):
        current_app.extensions["lookout.live_sessions"].remove(request.sid)

    def on_subscribe(self, data):
        """Join a room; the acknowledgement tells the page whether it worked."""
        if not current_app.extensions["lookout.live_sessions"].valid(request.sid):
            disconnect()
            return {"ok": False, "error": "login required"}
        room = valid_room((data or {}).get("room") if isinstance(data, dict) else data)
        if room is None:
            return {"ok": False, "error": "unknown room"}
        if room not in rooms() and len(rooms()) > MAX_ROOMS_PER_CLIENT:
            return {"ok": False, "error": "too many rooms"}
        join_room(room)
        return {"ok": True, "room": room}

    def on_unsubscribe(self, data):
        room = valid_room((data or {}).get("room") if isinstance(data, dict) else data)
        if room is None:
            return {"ok": False, "error": "unknown room"}
        leave_room(room)
        return {"ok": True, "room": room}


# Registration only records the class; it binds to a server in socketio.init_app().
socketio.on_namespace(LiveNamespace(NAMESPACE))
