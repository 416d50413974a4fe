"""The web process's end of the message queue: how live updates from collectors arrive.

python-socketio's Redis manager listens on the deployment's channel and, when Redis goes
away, retries after 1, 2, 4 ... up to 60 seconds, logging an error at every attempt. After
an outage of a few minutes the pages of a web process stayed frozen for up to a minute
once Redis was back (measured: still unsubscribed 5 s after Redis returned, next attempt
16 s later). `PromptRedisManager` retries every RETRY seconds instead, logs the outage
once and its end once, and bounds its connection attempts.

The channel is named after the store (collectors/live_channel.py `LiveChannel`), which may be down
when the web process starts: the managers look it up when they first need it, listen
once it is known, and drop what this process would publish until then.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator

import socketio

from lookout.collectors.message_queue import is_redis
from lookout.core.celery_client import REDIS_SOCKET_BOUNDS

log = logging.getLogger(__name__)

RETRY = 1.0  # seconds between attempts to subscribe again
# The broker's bounds, less the read timeout: the subscription waits for messages.
LISTENER_SOCKET_OPTIONS = {key: value for key, value in REDIS_SOCKET_BOUNDS.items()
                           if key != "socket_timeout"}


class ChannelLookup:
    """For a python-socketio pub/sub manager: `channel` is a lookup asked at each use
    (python-socketio reads the attribute; its constructor assigns it a name or a lookup)."""

    _lookup: Callable[[], str]

    @property
    def channel(self) -> str:
        return self._lookup()

    @channel.setter
    def channel(self, value: str | Callable[[], str]) -> None:
        self._lookup = value if callable(value) else (lambda: value)

    def _channel_known(self) -> bool:
        try:
            self.channel
        except Exception:  # noqa: BLE001 - the store's error: asked again next time
            return False
        return True

    def _thread(self) -> None:
        """Listen, once the channel is known (asked every RETRY seconds until then)."""
        if not self._channel_known():
            log.error("live updates from collectors wait for the store: the live channel "
                      "is named after it; asking again every %.0f s", RETRY)
            while not self._channel_known():
                time.sleep(RETRY)
            log.info("live channel known: listening for live updates from collectors")
        super()._thread()

    def _publish(self, data: Any) -> Any:
        if not self._channel_known():
            if not getattr(self, "_dropping", False):  # once: `lookout run` emits every tick
                log.warning("live updates not published until the store answers: the live "
                            "channel is named after it")
                self._dropping = True
            return None
        return super()._publish(data)


class LazyKombuManager(ChannelLookup, socketio.KombuManager):
    """python-socketio's Kombu manager (a message queue other than Redis), channel looked up."""


class PromptRedisManager(ChannelLookup, socketio.RedisManager):
    """python-socketio's Redis manager, with a listener that resubscribes every second."""

    def _redis_listen_with_retries(self) -> Iterator[Any]:
        failing = False
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                if failing:
                    log.info("message queue back: live updates from collectors resume")
                    failing = False
                yield from self.pubsub.listen()
            except Exception as exc:  # noqa: BLE001 - any failure: connect and subscribe again
                if not failing:
                    log.error("message queue unreachable, live updates from collectors "
                              "stopped; trying again every %.0f s: %s", RETRY, exc)
                failing = True
                time.sleep(RETRY)


def client_manager(message_queue: str, channel: str | Callable[[], str] | None) -> Any:
    """The Socket.IO client manager of a web process: in memory without a message queue,
    the prompt Redis one on Redis, python-socketio's Kombu one on anything else. `channel`:
    its name, or a lookup asked when first needed (see the module doc).

    Always given explicitly: Flask-SocketIO keeps the options of every init_app() call,
    so an app made after one with a message queue would otherwise inherit its queue.
    """
    if not message_queue or not channel:
        return socketio.Manager()
    if is_redis(message_queue):
        return PromptRedisManager(message_queue, channel=channel,
                                  redis_options=dict(LISTENER_SOCKET_OPTIONS))
    return LazyKombuManager(message_queue, channel=channel)
