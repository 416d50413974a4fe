"""The web process's private Celery client, shared by remote control and inspect.

Broadcasting needs only the broker, never the user's app: a private app that is not the
current app keeps Lookout's settings out of the user's and fails fast (no retry loop
on start) when the broker is down, so an endpoint can answer 503 at once.
"""
from __future__ import annotations

import threading


class BrokerUnavailable(Exception):
    """The broker refused or timed out the connection, so nothing was sent."""


class PrivateCeleryApp:
    """A Celery app for `broker_url`, made on first use (nothing connects at import)."""

    def __init__(self, broker_url: str, name: str, connect_timeout: float = 2.0):
        self.broker_url = broker_url
        self.name = name
        self.connect_timeout = connect_timeout
        self._app = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._app is None:
                from celery import Celery

                app = Celery(self.name, broker=self.broker_url, set_as_current=False)
                app.conf.broker_connection_timeout = self.connect_timeout
                app.conf.broker_connection_retry_on_startup = False
                self._app = app
            return self._app
