"""Task statistics over a time window, computed from per-minute rollups only.

Scanning a million task rows for a chart is what makes monitoring tools slow; rollups hold
one row per task name and minute, so a 7-day window reads at most 10,080 rows per name.
Counts are summed in SQL; runtime histograms are merged in Python (they are JSON). A week
of 50 busy task names is still 500,000 rows (1-3 s), so results are cached for 200x what
they cost (2-60 s; see cost_cache.py).
"""
from __future__ import annotations

import time

from sqlalchemy import Engine, func, literal, select

from lookout.core import histogram
from lookout.core.store.models import TaskRollup
from lookout.dashboard.web.cost_cache import CostCache

rollups = TaskRollup.__table__

COUNTS = ("received", "started", "succeeded", "failed", "retried", "revoked", "rejected")
SERIES_COUNTS = ("received", "succeeded", "failed", "retried")
PERCENTILES = (50, 95, 99)
# Series bucket sizes to choose from; the smallest giving at most MAX_POINTS points wins.
STEPS = (60, 300, 900, 3600, 6 * 3600, 86400)
MAX_POINTS = 200


def step_for(window: float) -> int:
    """1 min for 1h, 15 min for 24h, 1 h for 7d: enough points to see shape, not noise."""
    for step in STEPS:
        if window / step <= MAX_POINTS:
            return step
    return STEPS[-1]


class RollupStats:
    def __init__(self, engine: Engine, clock=time.time):
        self.engine = engine
        self.clock = clock
        self.cache = CostCache()

    def stats(self, window: float) -> dict:
        return self.cache.get_or_compute(window, lambda: self._stats(window))

    def _stats(self, window: float) -> dict:
        """Per-name counts and runtime percentiles, totals and a throughput series.

        The window covers whole minutes: rollup buckets starting at or after
        floor_to_minute(now - window). Buckets are epoch seconds of the minute start.
        """
        now = self.clock()
        since = int((now - window) // 60 * 60)
        step = step_for(window)
        in_window = rollups.c.bucket >= since
        sums = [func.coalesce(func.sum(rollups.c[c]), 0).label(c) for c in COUNTS]
        with self.engine.connect() as conn:
            per_name = conn.execute(
                select(rollups.c.name, *sums,
                       func.coalesce(func.sum(rollups.c.runtime_count), 0).label("runtime_count"),
                       func.coalesce(func.sum(rollups.c.runtime_sum), 0.0).label("runtime_sum"))
                .where(in_window).group_by(rollups.c.name).order_by(rollups.c.name)
            ).mappings().all()
            hists = conn.execute(
                select(rollups.c.name, rollups.c.runtime_hist)
                .where(in_window, rollups.c.runtime_hist.is_not(None))).all()
            point = (rollups.c.bucket - rollups.c.bucket % literal(step)).label("point")
            series_rows = conn.execute(
                select(point, *(func.sum(rollups.c[c]).label(c) for c in SERIES_COUNTS))
                .where(in_window).group_by(point).order_by(point)).mappings().all()
        merged = histogram.merge_by_name(hists)
        tasks = [_task_stats(row, merged.get(row["name"], {})) for row in per_name]
        return {
            "window": window,
            "since": since,
            "until": now,
            "step": step,
            "totals": _totals(per_name, merged),
            "tasks": tasks,
            "series": _series(series_rows, since, now, step),
        }


def _task_stats(row, hist: dict[int, int]) -> dict:
    counts = {c: int(row[c]) for c in COUNTS}
    entry = {"name": row["name"], "counts": counts,
             "failure_rate": _failure_rate(counts),
             "runtime_count": int(row["runtime_count"]),
             "runtime_mean": _mean(row["runtime_sum"], row["runtime_count"])}
    entry.update(_percentiles(hist))
    return entry


def _totals(per_name, merged: dict[str, dict[int, int]]) -> dict:
    counts = {c: sum(int(row[c]) for row in per_name) for c in COUNTS}
    runtime_count = sum(int(row["runtime_count"]) for row in per_name)
    runtime_sum = sum(float(row["runtime_sum"]) for row in per_name)
    everything: dict[int, int] = {}
    for hist in merged.values():
        histogram.merge(everything, hist)
    totals = {"counts": counts, "failure_rate": _failure_rate(counts),
              "runtime_count": runtime_count, "runtime_mean": _mean(runtime_sum, runtime_count)}
    totals.update(_percentiles(everything))
    return totals


def _series(rows, since: int, now: float, step: int) -> list[dict]:
    """One point per step from the window start to now, zero-filled where nothing ran."""
    by_point = {int(row["point"]): row for row in rows}
    points = []
    start = since - since % step
    for t in range(start, int(now) + 1, step):
        row = by_point.get(t)
        point = {"t": t}
        point.update({c: int(row[c] or 0) if row else 0 for c in SERIES_COUNTS})
        points.append(point)
    return points


def _failure_rate(counts: dict[str, int]) -> float | None:
    """Failed share of finished tasks (succeeded + failed); None when none finished."""
    finished = counts["succeeded"] + counts["failed"]
    return round(counts["failed"] / finished, 6) if finished else None


def _mean(total: float, count: int) -> float | None:
    return round(float(total) / int(count), 6) if count else None


def _percentiles(hist: dict[int, int]) -> dict:
    values = histogram.percentiles(hist, PERCENTILES)
    return {f"runtime_p{p}": values[p] for p in PERCENTILES}
