"""Collector counters. Most have one writing thread; readers take snapshots.

The receive thread owns `messages` and the connection fields (`connected`, the since-times,
`last_error`); the writer thread owns `stored`, `duplicates`, `dropped`, `write_lag`,
`unwritten_since`, `last_write_error`; the reconciler thread owns `reconciled`. Plain int
updates under the GIL keep those consistent enough for monitoring without a lock on the
hot path.

`received`, `rejected` (with `last_rejections`) and `last_event_at` have two writers:
the receive thread validates most messages itself, but under a backlog it buffers them
undecoded and the writer thread validates them when it takes them (see
`collectors.buffer.RawMessage`). Those are therefore changed only through
`count_received` and `reject`, which take `_lock`: a read-modify-write from two threads
could otherwise lose an increment.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


LIFETIME_COUNTERS = ("messages", "received", "stored", "reconciled", "duplicates", "dropped")


@dataclass
class CollectorStats:
    started_at: float = field(default_factory=time.time)
    messages: int = 0  # broker messages (a task.multi message holds many events)
    received: int = 0  # valid events handed to the writer
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    last_rejections: deque = field(default_factory=lambda: deque(maxlen=20))
    stored: int = 0  # events written (timeline rows + worker events)
    # Final events the reconciler made from the result backend (collectors/reconcile.py):
    # stored like any event but never received, so stored may exceed received by these.
    reconciled: int = 0
    duplicates: int = 0
    dropped: int = 0  # events lost by the collector itself (should stay 0)
    last_event_at: float | None = None  # receive time of the newest event
    write_lag: float = 0.0  # seconds between receive and commit of the last batch
    # Receive time of the oldest event in the batch the writer is writing (None between
    # batches): a write that hangs or keeps failing shows as a growing lag in `snapshot`,
    # where `write_lag` alone would stay at the last commit's figure.
    unwritten_since: float | None = None
    connected: bool = False
    connected_since: float | None = None
    disconnected_since: float | None = None
    last_error: str | None = None  # broker side: owned by the receive thread
    last_write_error: str | None = None  # database side: owned by the writer thread
    # The message queue to web processes as the push thread last found it (a standalone
    # collector with LOOKOUT_MESSAGE_QUEUE): {"ok", "subscribers", "error"}; else None.
    live: dict | None = None
    # The live push's rates (collectors/live_rates.LiveRates) when this collector pushes:
    # the status row carries their last minute, for the pages' throughput charts.
    live_rates: Any = None
    # Lifetime totals of earlier runs under this collector name (from its last status
    # row): /metrics counters continue across restarts instead of dropping to zero.
    baseline: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                  compare=False)
    # Set by the receive thread when `connected` changes: the status row is written at
    # once (collectors/status.py), not up to a tick later, so /healthz never calls a
    # collector that has just connected "disconnected from broker" (or the reverse).
    status_due: threading.Event = field(default_factory=threading.Event, repr=False,
                                        compare=False)

    def count_received(self, count: int, received_at: float) -> None:
        """Add `count` valid events received at `received_at` (from either thread)."""
        with self._lock:
            self.received += count
            if self.last_event_at is None or received_at > self.last_event_at:
                self.last_event_at = received_at

    def reject(self, reason: str, detail: str = "") -> int:
        """Count one invalid event (from either thread); returns the count for `reason`."""
        with self._lock:
            seen = self.rejected[reason] = self.rejected[reason] + 1
            self.last_rejections.append((time.time(), reason, detail[:200]))
        return seen

    def snapshot(self) -> dict:
        """A JSON-ready copy for the status row and /healthz."""
        with self._lock:
            rejected = dict(self.rejected)
            last_rejections = [list(r) for r in self.last_rejections]
        return {
            "messages": self.messages,
            "received": self.received,
            "rejected": sum(rejected.values()),
            "rejected_by_reason": rejected,
            "last_rejections": last_rejections,
            "stored": self.stored,
            "reconciled": self.reconciled,
            "duplicates": self.duplicates,
            "dropped": self.dropped,
            "write_lag": round(self.current_write_lag(), 3),
            "last_error": self.last_error,
            "last_write_error": self.last_write_error,
            "live": self.live,
            "live_points": self.live_rates.points() if self.live_rates is not None else [],
            "lifetime": self._lifetime(rejected),
        }

    def current_write_lag(self) -> float:
        """The last commit's lag, or the age of the batch being written if that is more."""
        since = self.unwritten_since
        if since is None:
            return self.write_lag
        return max(self.write_lag, time.time() - since)

    def _lifetime(self, rejected: dict) -> dict:
        base = self.baseline
        by_reason = Counter({str(k): int(v) for k, v in
                             (base.get("rejected_by_reason") or {}).items()})
        by_reason.update(rejected)
        totals = {name: int(base.get(name) or 0) + getattr(self, name)
                  for name in LIFETIME_COUNTERS}
        return {**totals, "rejected_by_reason": dict(by_reason)}
