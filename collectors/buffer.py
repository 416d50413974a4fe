"""The hand-off between the receive thread and the writer thread.

The receiver only appends (never blocks, never touches the database); the writer takes
batches. Each `put` may carry a token (e.g. an AMQP delivery tag) that the writer hands
back through `on_commit` once those events are durably stored.

Under a backlog the receiver appends `RawMessage`s instead of validated events: a
decoded `Event` costs about 1.6 KB of memory (tuple, fields dict, strings), the message
body it came from about 300-500 bytes per event. A burst that outruns the writer then
waits in memory as compact bytes (a 150k-event burst stayed under 200 MB of RSS), and the
receiver, which must keep up with the broker, does less work exactly when it is busiest.
The writer's `get_batch` decodes and validates them, outside the lock, in arrival order.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable

from lookout.collectors.events import Event


class RawMessage:
    """A broker message buffered undecoded, with what is needed to decode it later.

    `expand` (the receiver's) turns it into valid events, counting the invalid ones;
    `count` is the estimate of its events that the buffer's pending count carries.
    """

    __slots__ = ("body", "content_type", "content_encoding", "accept", "local_received",
                 "count", "expand")

    def __init__(self, body: Any, content_type: str | None, content_encoding: str | None,
                 accept: Any, local_received: float, count: int,
                 expand: Callable[["RawMessage"], list[Event]]) -> None:
        self.body = body
        self.content_type = content_type
        self.content_encoding = content_encoding
        self.accept = accept
        self.local_received = local_received
        self.count = count
        self.expand = expand


class EventBuffer:
    """A thread-safe FIFO of validated events, taken by the writer in batches."""

    def __init__(self) -> None:
        # (events or a RawMessage, token, number of events counted as pending)
        self._chunks: deque[tuple[Any, Any, int]] = deque()
        self._pending = 0
        self._ready = threading.Condition(threading.Lock())
        self.high_water = 0  # most events ever pending at once: a figure for /healthz

    def put(self, events: list[Event], token: Any = None) -> None:
        """Append events (possibly none, to pass a token along); never blocks for long."""
        self._append(events, token, len(events))

    def put_raw(self, message: RawMessage, token: Any = None) -> None:
        """Append an undecoded message, counted as `message.count` pending events."""
        self._append(message, token, message.count)

    def _append(self, item: Any, token: Any, count: int) -> None:
        with self._ready:
            self._chunks.append((item, token, count))
            self._pending += count
            if self._pending > self.high_water:
                self.high_water = self._pending
            self._ready.notify()

    def get_batch(self, max_events: int, timeout: float) -> tuple[list[Event], list[Any]]:
        """Up to about `max_events` events and their tokens; waits up to `timeout` for any."""
        while True:
            with self._ready:
                if not self._chunks:
                    self._ready.wait(timeout)
                items: list[Any] = []
                tokens: list[Any] = []
                taken = 0
                while self._chunks and (not taken or taken < max_events):
                    item, token, count = self._chunks.popleft()
                    items.append(item)
                    taken += count
                    if token is not None:
                        tokens.append(token)
                self._pending -= taken
            events: list[Event] = []
            for item in items:
                if item.__class__ is RawMessage:
                    events.extend(item.expand(item))
                else:
                    events.extend(item)
            # Raw messages that held no valid event (and no token) must not look like an
            # empty buffer to a stopping writer while more chunks wait: take the next ones.
            if events or tokens or not items:
                return events, tokens
            timeout = 0.0

    def wake(self) -> None:
        """Release a writer waiting in `get_batch` (used on shutdown)."""
        with self._ready:
            self._ready.notify_all()

    def __len__(self) -> int:
        return self._pending
