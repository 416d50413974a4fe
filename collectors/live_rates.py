"""The rates of the live push, and the last minute of them for pages that open later.

A page's throughput chart draws the rates the push thread sends twice a second. A page
opened now had only what arrived after it opened: an empty chart, filling for a minute,
just when someone opens the dashboard to see what happened (a trial). So every rate
pushed is also kept here for a minute; the collector's status row carries them
(collectors/status.py) and the web draws the chart's past from them
(dashboard/history/throughput.py), whichever process the page asks.

Written by the push thread only; the status thread reads `points()` under the lock.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any

from lookout.collectors.events import is_number

# Rates are averaged over this many seconds: commits do not line up with ticks under
# load, and a per-tick rate would zig-zag between 0 and twice the truth.
RATE_WINDOW = 2.0
# Pushed rates kept: a minute of half-second ticks, as many as a page's chart shows.
POINTS_KEPT = 120


class LiveRates:
    """Events/s and finished tasks/s per push tick, and the last POINTS_KEPT of them."""

    def __init__(self, window: float = RATE_WINDOW, kept: int = POINTS_KEPT) -> None:
        self.window = window
        self._ticks: deque[tuple[float, float, int, int]] = deque()
        self._points: deque[tuple[float, float, float]] = deque(maxlen=kept)
        self._lock = threading.Lock()

    def tick(self, now: float, elapsed: float, events: int,
             finished: int) -> tuple[float, float]:
        """Events/s and finished tasks/s over the ticks of the last `window` seconds,
        divided by the time those ticks covered. A collector that has just taken the live
        lease over (or just started) has a tick or two: dividing by the whole window drew
        a dip to a quarter of the rate on every takeover (seen in a trial)."""
        ticks = self._ticks
        ticks.append((now, elapsed, events, finished))
        while ticks[0][0] <= now - self.window:
            ticks.popleft()
        span = max(sum(t[1] for t in ticks), 1e-3)
        events_rate = round(sum(t[2] for t in ticks) / span, 2)
        finished_rate = round(sum(t[3] for t in ticks) / span, 2)
        with self._lock:
            self._points.append((round(now, 2), finished_rate, events_rate))
        return events_rate, finished_rate

    def resume(self, earlier: list[tuple[float, float, float]]) -> None:
        """Start from the points an earlier process of this collector left in its status
        row: a restart emptied the row, and the chart's last minute lost this collector's
        share of the rate (a trial)."""
        with self._lock:
            kept = list(self._points)
            self._points.clear()
            self._points.extend(p for p in earlier if not kept or p[0] < kept[0][0])
            self._points.extend(kept)

    def points(self) -> list[tuple[float, float, float]]:
        """[(time, finished tasks/s, events/s)] of the pushes kept, oldest first."""
        with self._lock:
            return list(self._points)


def parse_points(raw: Any) -> list[tuple[float, float, float]]:
    """A status row's `live_points` as LiveRates wrote them, oldest first; malformed
    points (a row no Lookout wrote) are left out."""
    points = []
    for point in raw if isinstance(raw, list) else []:
        if isinstance(point, list) and len(point) == 3 and all(map(is_number, point)):
            points.append((float(point[0]), float(point[1]), float(point[2])))
    return sorted(points)
