"""Collector counters. Each counter has one writing thread; readers take snapshots.

The receive thread owns `received`, `rejected`, `messages`; the writer thread owns
`stored`, `duplicates`, `dropped`, `write_lag`. Plain int updates under the GIL keep
them consistent enough for monitoring without a lock on the hot path.
"""
from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass
class CollectorStats:
    started_at: float = field(default_factory=time.time)
    messages: int = 0  # broker messages (a task.multi message holds many events)
    received: int = 0  # valid events handed to the writer
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    last_rejections: deque = field(default_factory=lambda: deque(maxlen=20))
    stored: int = 0  # events written (timeline rows + worker events)
    duplicates: int = 0
    dropped: int = 0  # events lost by the collector itself (should stay 0)
    last_event_at: float | None = None  # receive time of the newest event
    write_lag: float = 0.0  # seconds between receive and commit of the last batch
    connected: bool = False
    connected_since: float | None = None
    disconnected_since: float | None = None
    last_error: str | None = None

    def reject(self, reason: str, detail: str = "") -> None:
        self.rejected[reason] += 1
        self.last_rejections.append((time.time(), reason, detail[:200]))

    def snapshot(self) -> dict:
        """A JSON-ready copy for the status row and /healthz."""
        return {
            "messages": self.messages,
            "received": self.received,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(self.rejected),
            "last_rejections": [list(r) for r in self.last_rejections],
            "stored": self.stored,
            "duplicates": self.duplicates,
            "dropped": self.dropped,
            "write_lag": round(self.write_lag, 3),
            "last_error": self.last_error,
        }
