"""Malformed broker messages cost only themselves on kombu's virtual transports (Redis).

kombu's Redis transport turns each pub/sub payload into a Message inside the delivery,
deep in `drain_events`: a payload that is JSON but not a Celery envelope (a list, no
`properties`, a body that is not base64) raises there, and a consumer can only read an
exception out of `drain_events` as a broken connection. On pub/sub a reconnect loses
everything published meanwhile, so one hostile `PUBLISH` cost every event after it. A
payload that is not JSON at all makes the transport raise `Empty` out of its read loop,
which leaves the messages read with it waiting for the next socket activity.

`make_tolerant(channel, on_bad)` fixes both on one channel, without touching kombu's
classes: the channel's `Message` becomes a subclass whose construction errors produce a
placeholder flagged `lookout_error` (the receiver counts and skips it), and its
`_receive_one` turns the not-JSON `Empty` into "nothing delivered", after counting it.
Real connection errors are untouched: they still reach the receiver and reconnect.
Both hooks name kombu internals (`Channel.Message`, `Channel._receive_one`); tests in
tests/integration/test_hostile_messages.py pin them on the installed kombu.
"""
from __future__ import annotations

import logging
from queue import Empty
from typing import Any, Callable

from kombu.message import Message as BaseMessage

OnBad = Callable[[str], None]
NOT_JSON = "not JSON"


class _DropNotJsonWarnings(logging.Filter):
    """kombu logs each not-JSON payload with its traceback; the receiver counts them
    instead and logs a bounded number (a flood must not flood the log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Cannot process event on channel")


_FILTER = _DropNotJsonWarnings()


def make_tolerant(channel: Any, on_bad: OnBad) -> None:
    """Make `channel` (of a virtual transport) skip malformed messages, reporting each."""
    channel.Message = _tolerant_message_class(channel.Message)
    receive_one = getattr(channel, "_receive_one", None)
    if receive_one is None:
        return  # not the Redis transport: no pub/sub read loop to guard

    def tolerant_receive_one(client):
        try:
            return receive_one(client)
        except Empty:  # raised only for a payload that is not JSON
            on_bad(NOT_JSON)
            return False

    channel._receive_one = tolerant_receive_one
    logger = logging.getLogger("kombu.transport.redis")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def _tolerant_message_class(message_class: type) -> type:
    class TolerantMessage(message_class):
        """A message, or a placeholder saying why the payload was not an envelope."""

        lookout_error: str | None = None

        def __init__(self, payload, channel=None, **kwargs):
            try:
                super().__init__(payload, channel=channel, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any payload shape at all
                BaseMessage.__init__(self, body=b"", channel=channel, delivery_info={},
                                     properties={}, headers={})
                self.lookout_error = (f"not a Celery envelope: {type(exc).__name__}: "
                                      f"{exc}")[:300]

    return TolerantMessage
