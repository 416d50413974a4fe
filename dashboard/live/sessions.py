"""Who each live socket belongs to, so a right that ends also ends its sockets.

Socket.IO connections outlive the HTTP request that opened them: a logout, a revoked
token or a disabled user must not leave a socket receiving task arguments. Each socket
keeps the check its connect handler got (auth/guard.py `socket_auth`); it runs on every
subscribe and on a sweep every SWEEP_EVERY seconds, and a logout or token revocation in
this process closes the matching sockets at once. Other web processes notice at their
next subscribe or sweep. It also keeps the rooms each socket joined, for the per-socket
room cap: python-socketio's own `rooms()` iterates a dict other threads add a room to on
every connect, and failed that way under a few hundred connects at once. With a message
queue, the task rooms joined are recorded there too (collectors/watched.py): on join, and
on every sweep, so a standalone collector emits task rows only to rooms someone watches.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from lookout.collectors.watched import WatchedTasks, task_uuids

log = logging.getLogger(__name__)

SWEEP_EVERY = 10.0


class LiveSessions:
    """sid -> identity check, for the sockets of this process; safe between threads."""

    def __init__(self, disconnect: Callable[[str], None], watched: WatchedTasks | None = None):
        self._disconnect = disconnect
        self._watched = watched
        self._checks: dict[str, Callable[[], Any]] = {}
        self._rooms: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._sweeping = False

    def add(self, sid: str, check: Callable[[], Any]) -> None:
        with self._lock:
            self._checks[sid] = check
            self._rooms[sid] = set()

    def remove(self, sid: str) -> None:
        with self._lock:
            self._checks.pop(sid, None)
            self._rooms.pop(sid, None)

    def join(self, sid: str, room: str, most: int) -> bool:
        """Record that the socket joins `room`; False if that would make more than `most`."""
        with self._lock:
            joined = self._rooms.get(sid)
            if joined is None:  # ended meanwhile: its disconnect is under way
                return True
            if room not in joined and len(joined) >= most:
                return False
            joined.add(room)
        self._mark(task_uuids((room,)))  # nothing for rooms other than task rooms
        return True

    def leave(self, sid: str, room: str) -> None:
        with self._lock:
            self._rooms.get(sid, set()).discard(room)

    def valid(self, sid: str) -> bool:
        with self._lock:
            check = self._checks.get(sid)
        return check is not None and check() is not None

    def end(self, user_id: int | None = None, token_id: int | None = None) -> int:
        """Close the sockets of this user or token now; returns how many."""
        with self._lock:
            ended = [sid for sid, check in self._checks.items()
                     if (user_id is not None and check.identity.user_id == user_id)
                     or (token_id is not None and check.identity.token_id == token_id)]
        for sid in ended:
            self.remove(sid)
            self._disconnect(sid)
        return len(ended)

    def watched_tasks(self) -> set[str]:
        """Uuids of the task rooms some socket of this process has joined."""
        with self._lock:
            return task_uuids(room for rooms in self._rooms.values() for room in rooms)

    def _mark(self, uuids: set[str]) -> None:
        if self._watched is None or not uuids:
            return
        try:
            self._watched.mark(uuids)
        except Exception:  # noqa: BLE001 - Redis away: the live push fails as well
            log.warning("could not record the watched task rooms", exc_info=True)

    def sweep(self) -> int:
        """Close every socket whose identity no longer holds; returns how many.
        Then refresh the record of the task rooms still joined."""
        with self._lock:
            checks = list(self._checks.items())
        ended = 0
        for sid, check in checks:
            try:
                still = check() is not None
            except Exception:  # noqa: BLE001 - the store is down: keep, check again later
                continue
            if not still:
                self.remove(sid)
                self._disconnect(sid)
                ended += 1
        self._mark(self.watched_tasks())
        return ended

    def start_sweeping(self, app, start_task: Callable, sleep: Callable) -> None:
        """Sweep every SWEEP_EVERY seconds in the background, once per process."""
        with self._lock:
            if self._sweeping:
                return
            self._sweeping = True

        def loop():
            while True:
                sleep(SWEEP_EVERY)
                with app.app_context():
                    self.sweep()
        start_task(loop)
