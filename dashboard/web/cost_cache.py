"""A small thread-safe cache whose entries live in proportion to what they cost to compute.

Exact counts over 800,000 rows or stats over a week of rollups take 0.1-3 s; recomputing
them for every page a client walks or every poll of the overview would load the database
for numbers that barely move. Cheap values (a 5 ms count) stay nearly live (2 s); costly
ones are kept longer (200x their cost, at most 60 s).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Hashable


class CostCache:
    def __init__(self, factor: float = 200.0, minimum: float = 2.0, maximum: float = 60.0,
                 size: int = 256, ttl: float | None = None):
        """`ttl` fixes the lifetime of every entry instead (0: cache nothing)."""
        self.factor, self.minimum, self.maximum, self.size = factor, minimum, maximum, size
        self.ttl = ttl
        self._entries: dict[Hashable, tuple[float, Any]] = {}  # key -> (expiry, value)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[bool, Any]:
        """(True, value) while `key` is fresh, else (False, None)."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def put(self, key: Hashable, value: Any, cost: float) -> None:
        """Remember `value`, which took `cost` seconds to compute."""
        ttl = self.ttl if self.ttl is not None else \
            min(self.maximum, max(self.minimum, cost * self.factor))
        if ttl <= 0:
            return
        with self._lock:
            self._entries.pop(key, None)
            if len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))  # the oldest entry
            self._entries[key] = (time.monotonic() + ttl, value)

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        hit, value = self.get(key)
        if hit:
            return value
        began = time.perf_counter()
        value = compute()
        self.put(key, value, time.perf_counter() - began)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
