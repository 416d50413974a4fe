"""Retry rates: how often each task name retries, from the per-minute rollups.

Tasks in RETRY come from the history API (/api/v1/tasks?state=RETRY); the rate over time
comes from the per-minute rollups, so a week-long chart reads rollup rows, never tasks.
The rate is retried / (succeeded + failed + retried): the share of executions that ended
in a retry, which stays comparable between a busy task and a rare one.
"""
from __future__ import annotations

from sqlalchemy import func, literal, select

from lookout.core.store.models import TaskRollup
from lookout.dashboard.history.rollups import step_for

rollups = TaskRollup.__table__
# Names charted: the ones retrying most; the table lists every name that retried.
MAX_SERIES = 8


def retry_stats(engine, window: float, now: float) -> dict:
    """Per-name retry counts and rates over the window, plus a series for the top names."""
    since = int((now - window) // 60 * 60)
    step = step_for(window)
    in_window = rollups.c.bucket >= since
    counts = [func.coalesce(func.sum(rollups.c[c]), 0).label(c)
              for c in ("retried", "succeeded", "failed")]
    with engine.connect() as conn:
        per_name = conn.execute(select(rollups.c.name, *counts).where(in_window)
                                .group_by(rollups.c.name)).mappings().all()
        tasks = sorted((_rate(row) for row in per_name if row["retried"]),
                       key=lambda t: (-t["retried"], t["name"]))
        top = [t["name"] for t in tasks[:MAX_SERIES]]
        point = (rollups.c.bucket - rollups.c.bucket % literal(step)).label("point")
        rows = conn.execute(
            select(rollups.c.name, point, *counts)
            .where(in_window, rollups.c.name.in_(top))
            .group_by(rollups.c.name, point)).mappings().all() if top else []
    start = since - since % step
    points = list(range(start, int(now) + 1, step))
    by_key = {(row["name"], int(row["point"])): row for row in rows}
    series = []
    for name in top:
        values = []
        for t in points:
            row = by_key.get((name, t))
            values.append({"t": t, "retried": int(row["retried"]) if row else 0,
                           "rate": _rate(row)["rate"] if row else None})
        series.append({"name": name, "points": values})
    return {"window": window, "since": since, "until": now, "step": step,
            "tasks": tasks, "series": series}


def _rate(row) -> dict:
    retried, succeeded, failed = (int(row[c]) for c in ("retried", "succeeded", "failed"))
    runs = retried + succeeded + failed
    return {"name": row["name"], "retried": retried, "succeeded": succeeded,
            "failed": failed, "rate": round(retried / runs, 6) if runs else None}
