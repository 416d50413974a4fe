"""Remote control commands sent with Celery's own mailbox, replies collected.

Below both the collector (which asks workers for heartbeats and enables events) and the
web app's controls; the web app's `ControlService` decides *whether* to send, this
module only sends and reports an unreachable broker as `BrokerUnavailable`.
"""
from __future__ import annotations

from typing import Any, Protocol

from lookout.core.celery_client import BrokerUnavailable, PrivateCeleryApp
from lookout.core.config import redact_url


class Broadcaster(Protocol):
    def __call__(self, command: str, arguments: dict[str, Any],
                 destination: list[str] | None, timeout: float) -> list[dict]: ...


class CeleryBroadcaster:
    """Sends control commands with Celery's own mailbox (app.control.broadcast)."""

    def __init__(self, broker_url: str, connect_timeout: float = 2.0,
                 broker_conf: dict[str, Any] | None = None):
        self.broker_url = broker_url
        self.connect_timeout = connect_timeout
        self._app = PrivateCeleryApp(broker_url, "lookout-control", connect_timeout,
                                     broker_conf)

    @classmethod
    def for_settings(cls, settings) -> "CeleryBroadcaster":
        return cls(settings.broker_url, broker_conf=settings.broker_conf)

    @property
    def app(self):
        return self._app.get()

    def __call__(self, command: str, arguments: dict[str, Any],
                 destination: list[str] | None, timeout: float) -> list[dict]:
        from kombu.exceptions import OperationalError

        try:
            with self.app.connection_for_write() as conn:
                # Fail fast: kombu would otherwise retry for a long time on publish.
                conn.ensure_connection(max_retries=1, interval_start=0.2,
                                       timeout=self.connect_timeout)
                return self.app.control.broadcast(
                    command, arguments=arguments, destination=destination,
                    reply=True, timeout=timeout, connection=conn) or []
        except (OperationalError, OSError) as exc:
            raise BrokerUnavailable(
                f"broker {redact_url(self.broker_url)} unreachable: {exc}") from exc
