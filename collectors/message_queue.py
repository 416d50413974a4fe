"""The message queue between collectors and web processes: sending to it, and checking it.

When collector and web run apart, live updates travel through a Redis pub/sub channel
(`LOOKOUT_MESSAGE_QUEUE`). python-socketio's Redis manager logs a message it cannot
publish and drops it, and its listener retries in the background: a message-queue outage
tells nobody, and every live page silently freezes. So both ends check the queue
themselves, over a connection of their own with short timeouts: a PING, and PUBSUB NUMSUB
of the deployment's channel (how many web processes are subscribed). The collector puts
its answer in its status row, the web process in /healthz; either failing is a problem
there, so the alert that watches /healthz fires.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from lookout.core.celery_client import REDIS_SOCKET_BOUNDS

PROBE_TIMEOUT = 2.0
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis(url: str) -> bool:
    return url.startswith(_REDIS_SCHEMES)


def external_emitter(message_queue: str, channel: str) -> Any:
    """A write-only emitter for a process that serves no clients itself (the collector).

    python-socketio's own external-process manager: `emit(event, data, to=, namespace=)`
    publishes to every web process on `channel`. On Redis its sockets are bounded.
    """
    import socketio

    if is_redis(message_queue):
        # The broker's bounds: without them, a queue that accepts connections and never
        # answers (a stopped server, a black-holed address) hung the push thread for good.
        return socketio.RedisManager(message_queue, channel=channel, write_only=True,
                                     redis_options=dict(REDIS_SOCKET_BOUNDS))
    return socketio.KombuManager(message_queue, channel=channel, write_only=True)


class MessageQueueProbe:
    """Whether the message queue answers, and how many processes listen on the channel.

    `check()` asks at most once per `max_age` seconds; a caller arriving while another
    asks gets the last answer instead of waiting (a hung queue costs one caller
    PROBE_TIMEOUT, not every /healthz request in line). Thread-safe.
    """

    def __init__(self, url: str, channel: str, max_age: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.channel = channel
        self.max_age = max_age
        self.clock = clock
        # No retries: redis-py's default (three, with backoff) would turn one silent
        # queue into four timeouts and seconds of backoff before the answer.
        self.redis = redis.Redis.from_url(url, socket_timeout=PROBE_TIMEOUT,
                                          socket_connect_timeout=PROBE_TIMEOUT,
                                          socket_keepalive=True, retry=Retry(NoBackoff(), 0))
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None
        self._checked_at = float("-inf")

    def check(self) -> dict[str, Any]:
        """{"ok": bool, "subscribers": int | None, "error": str | None}."""
        if self._last is not None and self.clock() - self._checked_at < self.max_age:
            return self._last
        if not self._lock.acquire(blocking=False):
            return self._last or {"ok": None, "subscribers": None, "error": "checking"}
        try:
            self._last = self._ask()
            self._checked_at = self.clock()
            return self._last
        finally:
            self._lock.release()

    def _ask(self) -> dict[str, Any]:
        try:
            self.redis.ping()
            counts = dict(self.redis.pubsub_numsub(self.channel))
        except Exception as exc:  # noqa: BLE001 - any failure means: not delivered
            return {"ok": False, "subscribers": None,
                    "error": f"{type(exc).__name__}: {exc}"[:300]}
        subscribers = next(iter(counts.values()), 0)
        return {"ok": True, "subscribers": int(subscribers), "error": None}

    def close(self) -> None:
        self.redis.close()


def probe_for(message_queue: str, channel: str) -> MessageQueueProbe | None:
    """A probe for a Redis message queue; None for none, or another kind (Kombu's)."""
    if not message_queue or not is_redis(message_queue):
        return None
    return MessageQueueProbe(message_queue, channel)
