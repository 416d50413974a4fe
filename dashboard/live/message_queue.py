"""The web process's end of the message queue: how live updates from collectors arrive.

python-socketio's Redis manager listens on the deployment's channel and, when Redis goes
away, retries after 1, 2, 4 ... up to 60 seconds, logging an error at every attempt. After
an outage of a few minutes the pages of a web process stayed frozen for up to a minute
once Redis was back (measured: still unsubscribed 5 s after Redis returned, next attempt
16 s later). `PromptRedisManager` retries every RETRY seconds instead, logs the outage
once and its end once, and bounds its connection attempts.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterator

import socketio

from lookout.collectors.message_queue import is_redis
from lookout.core.celery_client import REDIS_SOCKET_BOUNDS

log = logging.getLogger(__name__)

RETRY = 1.0  # seconds between attempts to subscribe again
# The broker's bounds, less the read timeout: the subscription waits for messages.
LISTENER_SOCKET_OPTIONS = {key: value for key, value in REDIS_SOCKET_BOUNDS.items()
                           if key != "socket_timeout"}


class PromptRedisManager(socketio.RedisManager):
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


def client_manager(message_queue: str, channel: str | None) -> Any:
    """The Socket.IO client manager of a web process: in memory without a message queue,
    the prompt Redis one on Redis, python-socketio's Kombu one on anything else.

    Always given explicitly: Flask-SocketIO keeps the options of every init_app() call,
    so an app made after one with a message queue would otherwise inherit its queue.
    """
    if not message_queue or not channel:
        return socketio.Manager()
    if is_redis(message_queue):
        return PromptRedisManager(message_queue, channel=channel,
                                  redis_options=dict(LISTENER_SOCKET_OPTIONS))
    return socketio.KombuManager(message_queue, channel=channel)
