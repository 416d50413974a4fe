"""The hand-off between the receive thread and the writer thread.

The receiver only appends (never blocks, never touches the database); the writer takes
batches. Each `put` may carry a token (e.g. an AMQP delivery tag) that the writer hands
back through `on_commit` once those events are durably stored.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any

from collectors.events import Event


class EventBuffer:
    """A thread-safe FIFO of validated events, taken by the writer in batches."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[list[Event], Any]] = deque()
        self._pending = 0
        self._ready = threading.Condition(threading.Lock())
        self.high_water = 0  # most events ever pending at once: a figure for /healthz

    def put(self, events: list[Event], token: Any = None) -> None:
        """Append events (possibly none, to pass a token along); never blocks for long."""
        with self._ready:
            self._chunks.append((events, token))
            self._pending += len(events)
            if self._pending > self.high_water:
                self.high_water = self._pending
            self._ready.notify()

    def get_batch(self, max_events: int, timeout: float) -> tuple[list[Event], list[Any]]:
        """Up to about `max_events` events and their tokens; waits up to `timeout` for any."""
        with self._ready:
            if not self._chunks:
                self._ready.wait(timeout)
            events: list[Event] = []
            tokens: list[Any] = []
            while self._chunks and (not events or len(events) < max_events):
                chunk, token = self._chunks.popleft()
                events.extend(chunk)
                if token is not None:
                    tokens.append(token)
            self._pending -= len(events)
            return events, tokens

    def wake(self) -> None:
        """Release a writer waiting in `get_batch` (used on shutdown)."""
        with self._ready:
            self._ready.notify_all()

    def __len__(self) -> int:
        return self._pending
