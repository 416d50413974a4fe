"""The last minute of the live throughput, for a chart that opens with its past drawn.

Each pushing collector's status row carries the rates it pushed in the last minute
(collectors/live_rates.py). They are added up per half-second slot, as a page adds up
the live messages (overview.js): collectors sharing a RabbitMQ queue each push their
share; of a Redis pair only the holder of the live lease pushes, so nothing counts twice.
A collector's rate holds until its next push, for at most HOLD seconds; a slot no
collector pushed in is a gap (None), not a 0: nothing was measured there.
"""
from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import Engine, select

from lookout.collectors.live_rates import POINTS_KEPT, parse_points
from lookout.core.store.models import CollectorStatus

STEP = 0.5  # seconds per slot: the push interval
SLOTS = POINTS_KEPT  # a minute, as many as each collector keeps and the chart shows
HOLD = 1.5  # a collector's rate stands for three ticks, then it counts as silent


def recent_throughput(engine: Engine, now: float) -> dict[str, Any]:
    """{"step", "hold", "points": [[slot time, finished tasks/s, events/s] or None
    values]}: the Overview sums live rates with the same step and hold."""
    span = STEP * SLOTS
    table = CollectorStatus.__table__
    with engine.connect() as conn:
        texts = conn.execute(select(table.c.stats).where(
            table.c.updated_at >= now - span - HOLD)).scalars().all()
    series = [points for points in map(_points, texts) if points]
    newest = max((points[-1][0] for points in series), default=now)
    end = math.floor(max(now, newest) / STEP) * STEP  # a collector's clock may run ahead
    slots = [end - STEP * (SLOTS - 1 - i) for i in range(SLOTS)]
    return {"step": STEP, "hold": HOLD, "points": [_slot(t, series) for t in slots]}


def _points(text: str | None) -> list[tuple[float, float, float]]:
    """A status row's pushed rates, oldest first; malformed ones are left out."""
    try:
        return parse_points(json.loads(text or "{}").get("live_points"))
    except (ValueError, AttributeError):
        return []


def _slot(t: float, series: list[list[tuple[float, float, float]]]) -> list:
    """Sum of each collector's latest rate pushed in (t - HOLD, t]."""
    tasks = events = 0.0
    heard = False
    for points in series:
        latest = None
        for point in points:
            if point[0] > t:
                break
            latest = point
        if latest is not None and latest[0] > t - HOLD:
            heard = True
            tasks += latest[1]
            events += latest[2]
    if not heard:
        return [t, None, None]
    return [t, round(tasks, 2), round(events, 2)]
