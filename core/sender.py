"""Sending a task by name, failing fast when the broker is down.

Used by the controls that start work: run a schedule entry now, retry a task, and the
Flower-compatible apply/send-task. It sends through the user's app (`-A proj`) when
Lookout watches that app's broker, so the app's task_routes and serializer settings
apply; otherwise through a private client on Lookout's broker with the app's connection
settings (a `--broker` given explicitly names where tasks must go).
"""
from __future__ import annotations

from typing import Any

from lookout.core.celery_client import BrokerUnavailable, PrivateCeleryApp
from lookout.core.config import redact_url

SEND_OPTIONS = frozenset({"queue", "exchange", "routing_key", "priority", "headers",
                          "expires", "countdown", "eta", "task_id", "serializer"})


class TaskSender:
    def __init__(self, settings, connect_timeout: float = 3.0):
        self.settings = settings
        self.connect_timeout = connect_timeout
        # task_send_sent_event: the history then knows the queue and send time of what
        # Lookout sends, as it does for any client configured so.
        self._private = PrivateCeleryApp(settings.broker_url, "lookout-sender",
                                         connect_timeout, {**settings.broker_conf,
                                                           "task_send_sent_event": True})

    def app(self):
        """The Celery app that sends (see the module docstring)."""
        user_app = self.settings.extra.get("celery_app")
        if user_app is not None and user_app.conf.broker_url == self.settings.broker_url:
            return user_app
        return self._private.get()

    def send(self, name: str, args: Any = (), kwargs: dict | None = None,
             **options: Any) -> str:
        """Send one task; returns its id. Unknown options are a ValueError. A list stays
        a list and a tuple a tuple, so the worker's events show the arguments as the
        original sender's did (schedule and retry matching compare that text)."""
        from kombu.exceptions import OperationalError

        unknown = set(options) - SEND_OPTIONS
        if unknown:
            raise ValueError(f"unknown send options: {', '.join(sorted(unknown))}")
        app = self.app()
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0.2,
                                       timeout=self.connect_timeout)
                result = app.send_task(name, args=args or (), kwargs=dict(kwargs or {}),
                                       connection=conn, retry=False, **options)
        except (OperationalError, OSError) as exc:
            raise BrokerUnavailable(f"broker {redact_url(str(app.conf.broker_url))} "
                                    f"unreachable: {exc}") from exc
        return result.id
