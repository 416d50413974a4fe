"""Workers and queues as the store knows them: worker rows with liveness, queue depth history.

Liveness is judged from the collector's receive time and the worker's heartbeat `freq`,
never the worker's own clock (clock skew between hosts is normal). Queue depth over time
comes from the collector's samples; depth *now* and inspect replies come from the broker
(views.py asks the inspector and the sampler for those).
"""
from __future__ import annotations

import json
import time

from sqlalchemy import Engine, func, select

from lookout.core.store.models import QueueSample, Task, Worker, WorkerQueue
from lookout.core.trouble import listening_since
from lookout.dashboard.history.service import list_item
from lookout.dashboard.history.task_sql import list_columns
from lookout.dashboard.web.cost_cache import CostCache
from lookout.dashboard.web.errors import ApiError

tasks = Task.__table__
workers = Worker.__table__
samples = QueueSample.__table__

# Grace added to 2 x freq before a heartbeat counts as missed: event delivery jitter.
HEARTBEAT_GRACE = 2.0
# Most points a depth chart gets; samples are kept per bucket beyond that.
MAX_POINTS = 300


class FleetService:
    """Worker and queue queries for the API and pages; safe to share between threads."""

    def __init__(self, engine: Engine, clock=time.time, lost_after: float = 60.0):
        self.engine = engine
        self.clock = clock
        # Silent this long (with a collector listening) and a worker is offline: the same
        # verdict that makes its open tasks lost (core/trouble.py).
        self.lost_after = lost_after
        self.counts = CostCache()

    # -- workers -------------------------------------------------------------------
    def list_workers(self) -> list[dict]:
        now = self.clock()
        with self.engine.connect() as conn:
            rows = conn.execute(select(workers).order_by(workers.c.hostname)).mappings().all()
            listening = listening_since(conn, now)
        return [_worker(row, now, listening, self.lost_after) for row in rows]

    def page_workers(self, status: str | None, limit: int, after: str | None) -> dict:
        """A page of workers by hostname (keyset: `after` is the last hostname seen), with
        the total; `status` keeps one of online, heartbeat-missed, offline, unknown."""
        query = select(workers).order_by(workers.c.hostname)
        if after is not None:
            query = query.where(workers.c.hostname > after)
        now = self.clock()
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(workers)).scalar_one()
            listening = listening_since(conn, now)
            if status is None:
                rows = conn.execute(query.limit(limit + 1)).mappings().all()
                items = [_worker(row, now, listening, self.lost_after) for row in rows]
            else:  # liveness is judged in Python (receive times); fleets are small
                items = [w for w in (_worker(row, now, listening, self.lost_after)
                                     for row in conn.execute(query).mappings())
                         if w["status"] == status][:limit + 1]
        more = len(items) > limit
        items = items[:limit]
        return {"items": items, "total": total,
                "next_cursor": items[-1]["hostname"] if more and items else None}

    def get_worker(self, hostname: str, recent: int = 20) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(select(workers).where(workers.c.hostname == hostname)
                               ).mappings().first()
            if row is None:
                raise ApiError(404, f"no worker named {hostname[:100]!r}")
            recent_rows = conn.execute(
                select(*list_columns()).where(tasks.c.worker == hostname)
                .order_by(tasks.c.timestamp.desc(), tasks.c.uuid.desc()).limit(recent)
            ).mappings().all()
            by_state = select(tasks.c.state, func.count()).where(
                tasks.c.worker == hostname).group_by(tasks.c.state)
            counts = self.counts.get_or_compute(("worker task counts", hostname),
                                                lambda: dict(conn.execute(by_state).all()))
            now = self.clock()
            listening = listening_since(conn, now)
            queues = conn.execute(select(WorkerQueue.queue, WorkerQueue.seen_at)
                                  .where(WorkerQueue.hostname == hostname)
                                  .order_by(WorkerQueue.queue)).mappings().all()
        worker = _worker(row, now, listening, self.lost_after)
        # What it last said it consumes (collectors/worker_queues.py): known when it is gone.
        worker["queues"] = [dict(q) for q in queues]
        worker["recent_tasks"] = [list_item(r) for r in recent_rows]
        worker["task_counts"] = dict(counts)
        return worker

    def last_consumers(self, queues: list[str]) -> dict[str, list[dict]]:
        """Queue -> the workers that last said they consume it, newest first: for a queue
        nobody consumes now, which worker to bring back."""
        found: dict[str, list[dict]] = {}
        if not queues:
            return found
        with self.engine.connect() as conn:
            rows = conn.execute(select(WorkerQueue.queue, WorkerQueue.hostname,
                                       WorkerQueue.seen_at)
                                .where(WorkerQueue.queue.in_(sorted(set(queues))[:1000]))
                                .order_by(WorkerQueue.seen_at.desc())).all()
        for queue, hostname, seen_at in rows:
            found.setdefault(queue, []).append({"hostname": hostname, "seen_at": seen_at})
        return found

    def presumed_online(self, worker: dict) -> bool:
        """Online as a yes/no (Flower's /api/workers?status=1, `flower_worker_online`,
        `celery_worker_up`): "unknown" keeps the last thing known. Read as offline, every
        collector restart turned the whole fleet offline for those outputs and fired every
        Flower-era "worker down" alert (seen in a trial). But a worker silent for longer
        than `lost_after` was already offline when the collector last listened: read as
        online, a dead worker came back up at every collector restart or store stall,
        restarting the alert's `for:` each time (a trial)."""
        if worker["status"] == "unknown":
            return worker["heartbeat_age"] <= self.lost_after
        return worker["status"] == "online"

    def known_worker(self, hostname: str) -> bool:
        with self.engine.connect() as conn:
            return conn.scalar(select(workers.c.hostname)
                               .where(workers.c.hostname == hostname)) is not None

    # -- queues --------------------------------------------------------------------
    def queue_history(self, name: str, window: float,
                      sample_interval: float) -> tuple[dict, bool]:
        """Sampled depth over a window, bucketed to at most MAX_POINTS points (max per
        bucket), and whether the queue was ever sampled at all."""
        now = self.clock()
        since = now - window
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(samples.c.timestamp, samples.c.messages, samples.c.consumers)
                .where(samples.c.queue == name, samples.c.timestamp >= since)
                .order_by(samples.c.timestamp)).all()
            ever = bool(rows) or conn.scalar(select(samples.c.id).where(
                samples.c.queue == name).limit(1)) is not None
        step = max(float(sample_interval), window / MAX_POINTS)
        return {"queue": name, "window": window, "since": since, "until": now, "step": step,
                "points": _bucket(rows, step)}, ever


def _bucket(rows, step: float) -> list[dict]:
    """Keep the deepest sample of each bucket: a backlog spike must not be averaged away."""
    points: list[dict] = []
    for ts, messages, consumers in rows:
        start = ts - ts % step
        if points and points[-1]["t"] == start:
            last = points[-1]
            last["messages"] = max(last["messages"], messages)
            if consumers is not None:
                last["consumers"] = consumers
        else:
            points.append({"t": start, "messages": messages, "consumers": consumers})
    return points


def _worker(row, now: float, listening: float | None, lost_after: float) -> dict:
    """Liveness from collector receive time, so worker clock skew cannot fake it.

    A missed heartbeat means something only if a collector was listening for it
    (`listening`: core.trouble.listening_since): with none, every worker would look silent
    and on-call would restart healthy workers. Their status is "unknown" then. A worker
    killed with SIGKILL sends no worker-offline: silent for `lost_after` while a collector
    listened, it is offline too (its open tasks are lost by then), or it stayed "heartbeat
    missed" and "online" for good (seen in a trial).
    """
    worker = dict(row)
    age = max(0.0, now - row["last_heartbeat"])
    freq = row["freq"] or 2.0
    window = 2 * freq + HEARTBEAT_GRACE
    reason = None
    if not row["online"]:
        status, reason = "offline", "it said so (worker-offline)"
    elif age <= window:
        status = "online"
    elif listening is None or listening > now - window:
        status = "unknown"
        reason = "no collector has listened long enough to tell"
    elif age > lost_after and listening <= now - lost_after:
        status = "offline"
        reason = f"no heartbeat for {age:.0f} s (offline after {lost_after:g} s)"
    else:
        status = "heartbeat-missed"
        reason = f"no heartbeat for {age:.0f} s (expected every {freq:g} s)"
    worker["status"] = status
    worker["status_reason"] = reason
    worker["heartbeat_age"] = round(age, 3)
    worker["loadavg"] = _loadavg(row["loadavg"])
    return worker


def _loadavg(text: str | None) -> list | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, list) else None
