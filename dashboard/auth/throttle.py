"""Failed-login throttle: at most LOGIN_MAX_FAILURES per client address per window."""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

LOGIN_WINDOW = 300.0
LOGIN_MAX_FAILURES = 10


class LoginThrottle:
    """Counts failures per key (the client address) in a sliding window; per process."""

    def __init__(self):
        self._failures: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def blocked(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            failures = self._failures[key]
            while failures and failures[0] < now - LOGIN_WINDOW:
                failures.popleft()
            return len(failures) >= LOGIN_MAX_FAILURES

    def failed(self, key: str) -> None:
        with self._lock:
            if len(self._failures) > 10_000:
                self._failures.clear()
            self._failures[key].append(time.monotonic())
