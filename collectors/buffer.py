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

Memory is bounded (`memory_limit`, an estimate in bytes): past it, chunks that carry no
broker token (Redis: pub/sub cannot redeliver) go to a `SpillFile` and come back in order
once memory is drained. Chunks with a token (RabbitMQ) never spill: the broker keeps
them, and the consumer's prefetch bounds how many are held here.
"""
from __future__ import annotations

import threading
from collections import deque
import logging
from typing import Any, Callable, Sequence

from lookout.collectors.events import Event

log = logging.getLogger(__name__)

EVENT_BYTES = 1600  # memory held by one decoded event (tuple, fields dict, strings)
RAW_OVERHEAD = 250  # a RawMessage's own objects, besides its body


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

    def __init__(self, memory_limit: int = 0) -> None:
        # (events or a RawMessage, token, number of events counted as pending, bytes)
        self._chunks: deque[tuple[Any, Any, int, int]] = deque()
        self._pending = 0
        self._ready = threading.Condition(threading.Lock())
        self.high_water = 0  # most events ever pending at once: a figure for /healthz
        self.memory_limit = memory_limit  # 0: no bound (and no spilling)
        self.held_bytes = 0  # estimated memory held by chunks in `_chunks`
        self._spill: Any = None  # a collectors.spill.SpillFile (which imports this module)
        self._spilling = False  # once spilling, new chunks follow the spilled ones (FIFO)
        self.spilled = 0  # events ever written to the spill file

    def attach_spill(self, spill: Any) -> None:
        """Overflow to `spill` from now on; what an earlier run left in it comes first."""
        with self._ready:
            self._spill = spill
            if spill.pending:
                self._spilling = True
                self._pending += spill.pending
                self._ready.notify()

    @property
    def spill_pending(self) -> int:
        """Events waiting in the spill file."""
        spill = self._spill
        return spill.pending if spill is not None else 0

    def put(self, events: list[Event], token: Any = None, body_size: int = 0) -> None:
        """Append events (possibly none, to pass a token along); never blocks for long.

        `body_size`, the length of the message they came from, stands for the memory
        their strings hold (a 3 KB argument is 3 KB held).
        """
        self._append(events, token, len(events), len(events) * EVENT_BYTES + body_size)

    def put_raw(self, message: RawMessage, token: Any = None) -> None:
        """Append an undecoded message, counted as `message.count` pending events."""
        self._append(message, token, message.count, len(message.body) + RAW_OVERHEAD)

    def _append(self, item: Any, token: Any, count: int, size: int) -> None:
        with self._ready:
            if not (token is None and count and self._spill is not None
                    and (self._spilling or self.held_bytes + size > self.memory_limit)
                    and self._to_spill(item, count)):
                self._chunks.append((item, token, count, size))
                self.held_bytes += size
            self._pending += count
            if self._pending > self.high_water:
                self.high_water = self._pending
            self._ready.notify()

    def _to_spill(self, item: Any, count: int) -> bool:
        """Append to the spill file (lock held); False if the disk refuses (kept in memory)."""
        try:
            self._spill.append(item, count)
        except (OSError, ValueError) as exc:
            log.error("cannot spill to %s (%s): keeping the backlog in memory",
                      self._spill.path, exc)
            return False
        if not self._spilling:
            log.warning("backlog over %d MB of memory: spilling to %s",
                        self.memory_limit >> 20, self._spill.path)
        self._spilling = True
        self.spilled += count
        return True

    def get_batch(self, max_events: int, timeout: float) -> tuple[list[Event], list[Any]]:
        """Up to about `max_events` events and their tokens; waits up to `timeout` for any."""
        while True:
            with self._ready:
                if not self._chunks and not self._spilling:
                    self._ready.wait(timeout)
                items: list[Any] = []
                tokens: list[Any] = []
                taken = 0
                while self._chunks and (not taken or taken < max_events):
                    item, token, count, size = self._chunks.popleft()
                    items.append(item)
                    taken += count
                    self.held_bytes -= size
                    if token is not None:
                        tokens.append(token)
                if not items and self._spilling:
                    taken = self._read_spill(items, max_events)
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

    def _read_spill(self, items: list[Any], max_events: int) -> int:
        """Move the oldest spilled chunks into `items` (lock held); returns their count."""
        try:
            chunks = self._spill.read(max_events)
        except (OSError, ValueError) as exc:  # left in the file for the next run
            log.error("cannot read the spill file %s: %s", self._spill.path, exc)
            self._spilling = False
            return 0
        taken = 0
        for item, count in chunks:
            items.append(item)
            taken += count
        if self._spill.drained():
            # Torn lines were counted as pending but never come back: forget them.
            self._spilling = False
            in_memory = sum(count for _item, _token, count, _size in self._chunks)
            taken = max(taken, self._pending - in_memory)
        return taken

    def put_back(self, events: list[Event], tokens: Sequence[Any] = ()) -> None:
        """Return an unwritten batch to the front (a writer stopping at its deadline).

        A batch with broker `tokens` is the broker's to redeliver (its messages stay
        unacked); the chunk keeps its last token to say so.
        """
        token = tokens[-1] if tokens else None
        if events:
            with self._ready:
                self._chunks.appendleft((events, token, len(events), len(events) * EVENT_BYTES))
                self.held_bytes += len(events) * EVENT_BYTES
                self._pending += len(events)

    def keep_rest(self) -> tuple[int, int, int]:
        """At shutdown: spill what memory still holds; returns (spilled, redelivered, lost).

        Chunks with a broker token are unacked, so the broker redelivers them: they are
        only let go. Token-less events that cannot be spilled (no spill file, disk
        refusing) are lost, and counted so.
        """
        spilled = redelivered = lost = 0
        with self._ready:
            while self._chunks:
                item, token, count, size = self._chunks.popleft()
                self.held_bytes -= size
                if token is not None:
                    redelivered += count
                elif count and self._spill is not None and self._to_spill(item, count):
                    spilled += count
                    continue
                else:
                    lost += count
                self._pending -= count
            if self._spill is not None:
                self._spill.sync()
        return spilled, redelivered, lost

    def close_spill(self) -> None:
        """Release the spill file (what is unread in it stays for the next run)."""
        with self._ready:
            if self._spill is not None:
                self._spill.close()
                self._spill = None

    def wake(self) -> None:
        """Release a writer waiting in `get_batch` (used on shutdown)."""
        with self._ready:
            self._ready.notify_all()

    def __len__(self) -> int:
        return self._pending
