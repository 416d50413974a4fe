"""Retention: delete old history a little at a time so ingestion never waits on it.

Each `prune_step` deletes about `limit` rows, every kind in its own short transaction,
oldest first: task rows (with their timelines) past `retention` or beyond `max_tasks`,
rollups and queue samples past `rollup_retention` (kept far longer: they are tiny and
feed the long-range charts), workers not heard for `worker_retention`, timeline rows
whose task is gone, and revoke requests past `retention` (a task they name is finished
or pruned by then, or was never seen). The writer calls it
between batches, so with SQLite there is still only one writer at a time.
"""
from __future__ import annotations

import logging
from typing import Sequence

from sqlalchemy import Engine, Table, delete, func, select, tuple_

from lookout.core.config import Settings
from lookout.core.store.models import (
    QueueSample,
    RevokeRequest,
    Task,
    TaskEvent,
    TaskRollup,
    Worker,
)

log = logging.getLogger(__name__)

TASKS: Table = Task.__table__
TASK_EVENTS: Table = TaskEvent.__table__
ROLLUPS: Table = TaskRollup.__table__
SAMPLES: Table = QueueSample.__table__
WORKERS: Table = Worker.__table__
REVOKES: Table = RevokeRequest.__table__


class Pruner:
    """Deletes expired history in small steps; `prune_step` is cheap when nothing is due."""

    def __init__(self, engine: Engine, settings: Settings, limit: int = 2000) -> None:
        self.engine = engine
        self.settings = settings
        self.limit = limit

    def prune_step(self, now: float) -> int:
        """Delete up to about `limit` expired rows; return how many were deleted."""
        budget = self.limit
        if self.settings.retention > 0:
            budget -= self._delete_tasks(
                select(TASKS.c.uuid).where(TASKS.c.updated_at < now - self.settings.retention)
                .order_by(TASKS.c.updated_at), budget)
        if budget > 0 and self.settings.max_tasks > 0:
            excess = self._excess_tasks()
            if excess:
                budget -= self._delete_tasks(
                    select(TASKS.c.uuid).order_by(TASKS.c.timestamp, TASKS.c.uuid),
                    budget, most=excess)
        if budget > 0 and self.settings.rollup_retention > 0:
            cutoff = now - self.settings.rollup_retention
            budget -= self._delete_keys(
                ROLLUPS, (ROLLUPS.c.name, ROLLUPS.c.bucket),
                select(ROLLUPS.c.name, ROLLUPS.c.bucket).where(ROLLUPS.c.bucket < cutoff)
                .order_by(ROLLUPS.c.bucket), budget)
            budget -= self._delete_keys(
                SAMPLES, (SAMPLES.c.id,),
                select(SAMPLES.c.id).where(SAMPLES.c.timestamp < cutoff)
                .order_by(SAMPLES.c.timestamp), budget)
        if budget > 0 and self.settings.worker_retention > 0:
            # Workers gone for good (autoscaled pods, renamed hosts) leave the list.
            budget -= self._delete_keys(
                WORKERS, (WORKERS.c.hostname,),
                select(WORKERS.c.hostname).where(
                    WORKERS.c.last_heartbeat < now - self.settings.worker_retention)
                .order_by(WORKERS.c.last_heartbeat), budget)
        if budget > 0 and self.settings.retention > 0:
            budget -= self._delete_keys(
                REVOKES, (REVOKES.c.task_uuid,),
                select(REVOKES.c.task_uuid).where(
                    REVOKES.c.requested_at < now - self.settings.retention)
                .order_by(REVOKES.c.requested_at), budget)
        if budget > 0:
            budget -= self._delete_orphans(now, budget)
        deleted = self.limit - budget
        if deleted:
            log.info("pruned %d history rows", deleted)
        return deleted

    def _excess_tasks(self) -> int:
        """How many tasks are over the `max_tasks` cap."""
        with self.engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(TASKS)).scalar_one()
        return max(0, count - self.settings.max_tasks)

    def _delete_tasks(self, query, budget: int, most: int | None = None) -> int:
        """Delete a chunk of the tasks `query` selects, timelines first; rows deleted."""
        if budget <= 0:
            return 0
        # A task has a handful of timeline rows: take fewer tasks so the step stays small.
        chunk = max(1, budget // 5)
        with self.engine.begin() as conn:
            uuids = conn.execute(query.limit(min(chunk, most or chunk))).scalars().all()
            if not uuids:
                return 0
            events = conn.execute(
                delete(TASK_EVENTS).where(TASK_EVENTS.c.task_uuid.in_(uuids))).rowcount
            tasks = conn.execute(delete(TASKS).where(TASKS.c.uuid.in_(uuids))).rowcount
        return events + tasks

    def _delete_keys(self, table: Table, key: Sequence, query, budget: int) -> int:
        if budget <= 0:
            return 0
        with self.engine.begin() as conn:
            keys = [tuple(row) for row in conn.execute(query.limit(budget))]
            if not keys:
                return 0
            column = key[0] if len(key) == 1 else tuple_(*key)
            values = [k[0] for k in keys] if len(key) == 1 else keys
            return conn.execute(delete(table).where(column.in_(values))).rowcount

    def _delete_orphans(self, now: float, budget: int) -> int:
        """Timeline rows without a task. Only old rows are looked at, via their index:
        younger orphans (a task row refused by the database) are rare and wait their turn."""
        horizon = now - (self.settings.retention if self.settings.retention > 0 else 86400.0)
        query = (select(TASK_EVENTS.c.id)
                 .outerjoin(TASKS, TASKS.c.uuid == TASK_EVENTS.c.task_uuid)
                 .where(TASK_EVENTS.c.local_received < horizon, TASKS.c.uuid.is_(None))
                 .order_by(TASK_EVENTS.c.local_received))
        return self._delete_keys(TASK_EVENTS, (TASK_EVENTS.c.id,), query, budget)
