"""How many live sockets this web process holds, and whose: the caps that keep HTTP alive.

In threading mode each Engine.IO session holds one server thread while connected (a
websocket for its whole life, a long-poll for up to 25 s at a time), and gunicorn's gthread
worker has a fixed pool. So LOOKOUT_MAX_SOCKETS counts Engine.IO sessions and is checked at
the handshake, before any upgrade and before credentials are known: a client that never
authenticates (or connects only to the default namespace "/") counts too. With
`--threads` above the cap, threads are always left for HTTP, whoever opens the sockets.

A session is claimed once its /live connect has authenticated; LOOKOUT_MAX_SOCKETS_PER_CLIENT
caps the claimed sessions of one user or token (of one address with --no-auth), so one page
opened a hundred times or one leaky script cannot take every slot. A session left unclaimed
for CLAIM_WITHIN seconds (never authenticated, refused, or its login ended) is closed when a
newcomer finds the server full, so sockets opened only to squat cannot keep real users out
for long. (There is no cap on unclaimed sessions per address: a restart behind one proxy
or NAT brings hundreds of handshakes from one address within a second, every one genuine.)
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Hashable

log = logging.getLogger("lookout.live")
ENVIRON_KEY = "lookout.eio_sid"  # the /live handlers find their Engine.IO session here
CLAIM_WITHIN = 10.0  # a page authenticates within one round trip of its handshake
LOG_EVERY = 60.0  # a flood of refusals is one log line a minute per kind, with its count


@dataclass
class _Session:
    since: float  # opened, or last released: unclaimed since then
    key: Hashable | None = None  # whose, once /live authenticated it


class SocketLimits:
    """Engine.IO sessions of this process and whose they are; says no past the caps.

    Bookkeeping only, safe between threads: closing a session to make room is left to
    the caller (`install` below), after the lock is released.
    """

    def __init__(self, max_sockets: int, per_client: int,
                 clock: Callable[[], float] = time.monotonic):
        self.max_sockets = max_sockets  # 0: no cap
        self.per_client = per_client
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._per_key: Counter = Counter()
        self.refused: Counter = Counter()
        self._logged: dict[str, float] = {}

    def open(self, eio_sid: str) -> tuple[str | None, list[str]]:
        """A new handshake: (None, sessions to close to make room) or (reason, [])."""
        with self._lock:
            now = self._clock()
            evict = []
            excess = len(self._sessions) - self.max_sockets + 1
            if self.max_sockets and excess > 0:
                evict = self._overdue(now, excess)
                if len(evict) < excess:
                    return self._full(), []
                for sid in evict:
                    self._drop(sid)
            self._sessions[eio_sid] = _Session(now)
            return None, evict

    def claim(self, eio_sid: str, key: Hashable, who: str) -> str | None:
        """The session authenticated as `key`: None if it may stay live, else the reason."""
        with self._lock:
            session = self._sessions.get(eio_sid)
            if session is None:  # a session the handshake hook did not see (test clients)
                if self.max_sockets and len(self._sessions) >= self.max_sockets:
                    return self._full()
                session = self._sessions[eio_sid] = _Session(self._clock())
            if session.key == key:
                return None
            if self.per_client and self._per_key[key] >= self.per_client:
                return self._refuse("per_client", (
                    f"too many live connections for {who} (at most {self.per_client}); "
                    "close other tabs or clients"))
            self._unclaim(session)  # a second /live connect on one session, as someone else
            session.key = key
            self._per_key[key] += 1
            return None

    def release(self, eio_sid: str) -> None:
        """Its /live socket ended but the session may stay: unclaimed from now on."""
        with self._lock:
            session = self._sessions.get(eio_sid)
            if session is not None and session.key is not None:
                self._unclaim(session)
                session.since = self._clock()

    def close(self, eio_sid: str) -> None:
        """The Engine.IO session ended (any reason); idempotent."""
        with self._lock:
            self._drop(eio_sid)

    def snapshot(self) -> dict:
        """Counts for /healthz: sockets held, of which authenticated, caps, refusals."""
        with self._lock:
            return {"sockets": len(self._sessions), "authenticated": sum(self._per_key.values()),
                    "max_sockets": self.max_sockets, "max_per_client": self.per_client,
                    "refused": dict(self.refused)}

    # -- under the lock ------------------------------------------------------------------
    def _overdue(self, now: float, count: int) -> list[str]:
        """Up to `count` sessions unclaimed for CLAIM_WITHIN seconds, oldest first."""
        old = sorted((s.since, sid) for sid, s in self._sessions.items()
                     if s.key is None and now - s.since >= CLAIM_WITHIN)
        return [sid for _, sid in old[:count]]

    def _unclaim(self, session: _Session) -> None:
        if session.key is not None:
            self._per_key[session.key] -= 1
            if not self._per_key[session.key]:
                del self._per_key[session.key]
            session.key = None

    def _drop(self, eio_sid: str) -> None:
        session = self._sessions.pop(eio_sid, None)
        if session is not None:
            self._unclaim(session)

    def refuse_login(self, reason: str) -> str:
        """Count (and now and then log) a handshake without a valid identity."""
        with self._lock:
            return self._refuse("login", reason)

    def _full(self) -> str:
        return self._refuse("server_full", f"this server already has its maximum of "
                            f"{self.max_sockets} live connections; try again later")

    def _refuse(self, kind: str, reason: str) -> str:
        self.refused[kind] += 1
        now = self._clock()
        if now - self._logged.get(kind, -LOG_EVERY) >= LOG_EVERY:
            self._logged[kind] = now
            log.warning("live connection refused (%s so far): %s", self.refused[kind], reason)
        return reason


# -- wiring ------------------------------------------------------------------------------
LOGIN_REQUIRED = ("login required: a session cookie, or an API token in the "
                  "Authorization: Bearer header (or ?token=)")


def install(server, limits: SocketLimits,
            authenticated: Callable[[dict], bool] = lambda environ: True) -> None:
    """Count every Engine.IO session of `server` (python-socketio's) in `limits`, and
    refuse handshakes that `authenticated(environ)` says carry no valid identity.

    A refused handshake gets engine.io's 401 with {"message": reason} as its body, which
    clients report as the connect_error data; it was never upgraded, so it held no thread
    beyond the handshake. Browsers retry it with their reconnection backoff.
    """
    eio = server.eio
    connected, disconnected = eio.handlers["connect"], eio.handlers["disconnect"]

    def on_connect(eio_sid, environ):
        if not authenticated(environ):
            return {"message": limits.refuse_login(LOGIN_REQUIRED)}
        reason, evict = limits.open(eio_sid)
        if reason is not None:
            return {"message": reason}
        for sid in evict:
            _close_session(eio, sid)
        environ[ENVIRON_KEY] = eio_sid
        return connected(eio_sid, environ)

    def on_disconnect(eio_sid, reason):
        try:
            return disconnected(eio_sid, reason)
        finally:
            limits.close(eio_sid)

    eio.on("connect", on_connect)
    eio.on("disconnect", on_disconnect)


def _close_session(eio, sid: str) -> None:
    """Close a session without waiting: engine.io's own disconnect() waits for a
    long-polling client to collect its queue, which a squatter never does."""
    socket = eio.sockets.pop(sid, None)
    if socket is not None:
        socket.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
