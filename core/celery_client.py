"""Lookout's own Celery client: the user's app settings without the user's app.

Control broadcasts, inspect calls, queue depth and the event receiver all talk to the
broker; with `-A proj` they must use the project's broker URL *and* how it connects
(transport options such as a Redis key prefix or Sentinel master, SSL, login method),
or Lookout watches a different broker than the workers use. `app_broker_conf` takes
exactly those settings from the user's app; `PrivateCeleryApp` is a Celery app that is
never the current app (Lookout's settings stay out of the user's) and fails fast when
the broker is down (no retry loop), so an endpoint can answer 503 at once.
"""
from __future__ import annotations

import threading
from typing import Any

# What Lookout takes from the user's Celery app (`-A proj`) to reach the same broker.
BROKER_CONF_KEYS = ("broker_transport_options", "broker_use_ssl", "broker_login_method",
                    "broker_heartbeat", "timezone", "enable_utc")


# Bounds for every Redis socket Lookout opens, where the user's transport options do not
# set them: kombu's Redis transport leaves them unbounded. A broker address that accepts
# TCP but never answers (a proxy or load balancer whose Redis is gone, a half-open
# connection, the port taken by another service) otherwise blocks the caller forever in
# redis-py's connect handshake: the receiver would keep reporting "connected" through the
# outage and ignore stop requests, a revoke would hang its web thread. Redis answers in
# milliseconds; five seconds of silence is an outage. An idle pub/sub subscription is not
# cut by them: redis-py reads subscription messages without a timeout.
REDIS_SOCKET_BOUNDS = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0,
                       "socket_keepalive": True}
_REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "sentinel")


class BrokerUnavailable(Exception):
    """The broker refused or timed out the connection, so nothing was sent."""


def load_celery_app(spec: str) -> Any:
    """Import a Celery app as `celery -A spec` does ('proj', 'proj.celery:app'): from the
    current directory, finding `app` or `celery` in a module or its `celery` submodule."""
    from celery.app.utils import find_app

    return find_app(spec)


def app_broker_conf(celery_app: Any) -> dict[str, Any]:
    """The user's app's settings (BROKER_CONF_KEYS) that are set, defaults included."""
    if celery_app is None:
        return {}
    conf = celery_app.conf
    return {key: conf.get(key) for key in BROKER_CONF_KEYS if conf.get(key) is not None}


def transport_options(broker_url: str, broker_conf: dict[str, Any]) -> dict[str, Any]:
    """The user's transport options, with REDIS_SOCKET_BOUNDS where they set none."""
    options = dict(broker_conf.get("broker_transport_options") or {})
    if broker_url.partition("://")[0].lower() in _REDIS_SCHEMES:
        options = {**REDIS_SOCKET_BOUNDS, **options}
    return options


def connection_options(broker_url: str, broker_conf: dict[str, Any]) -> dict[str, Any]:
    """kombu.Connection keyword arguments for `app_broker_conf`'s settings."""
    options: dict[str, Any] = {"transport_options": transport_options(broker_url, broker_conf)}
    if broker_conf.get("broker_use_ssl"):
        options["ssl"] = broker_conf["broker_use_ssl"]
    if broker_conf.get("broker_login_method"):
        options["login_method"] = broker_conf["broker_login_method"]
    return options


class PrivateCeleryApp:
    """A Celery app for `broker_url`, made on first use (nothing connects at import)."""

    def __init__(self, broker_url: str, name: str, connect_timeout: float = 2.0,
                 broker_conf: dict[str, Any] | None = None):
        self.broker_url = broker_url
        self.name = name
        self.connect_timeout = connect_timeout
        self.broker_conf = dict(broker_conf or {})
        self._app = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._app is None:
                from celery import Celery

                app = Celery(self.name, broker=self.broker_url, set_as_current=False)
                app.conf.update(self.broker_conf)
                app.conf.broker_transport_options = transport_options(self.broker_url,
                                                                      self.broker_conf)
                app.conf.broker_connection_timeout = self.connect_timeout
                app.conf.broker_connection_retry_on_startup = False
                self._app = app
            return self._app
