"""Lost tasks: work a worker held when it died, which no event will ever finish.

A task RECEIVED or STARTED on a worker is *lost* when that worker
  - said goodbye (worker-offline) more than OFFLINE_GRACE ago: a warm shutdown finishes its
    tasks first, so one still open was killed or its last events were missed;
  - has sent nothing for `lost_after` (kill -9, a crashed host, a partition);
  - started again after the task began (a new worker-online or pid): the old process,
    and the task with it, is gone.
A slow task on a worker that keeps sending heartbeats is never lost, however long it runs
(that is *stuck*, judged elsewhere). Caveat: Celery's solo pool sends no heartbeat while
a task runs, so a long task there makes its worker look silent.

Lost is a flag beside the state, not a state: the history keeps what the events said.
The same SQL clause serves the task list filter, the trouble page and alert rules.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, false, func, or_, select

from lookout.core.store.models import Task, Worker

OPEN_STATES = ("RECEIVED", "STARTED")
OFFLINE_GRACE = 10.0  # a task's last events may trail its worker's worker-offline


def _since(task=Task):
    return func.coalesce(task.started_at, task.received_at, task.timestamp)


def lost_clause(now: float, lost_after: float):
    """SQL condition on the tasks table: the task is lost (see the module docstring)."""
    worker = Worker.__table__.alias("lost_worker")
    gone = or_(
        and_(worker.c.online == false(), worker.c.last_heartbeat < now - OFFLINE_GRACE),
        worker.c.last_heartbeat < now - lost_after,
        and_(worker.c.online_since.is_not(None), _since() < worker.c.online_since),
    )
    return and_(Task.state.in_(OPEN_STATES),
                exists(select(worker.c.hostname).where(worker.c.hostname == Task.worker,
                                                       gone)))


def lost_reason(task: dict[str, Any], worker: dict[str, Any] | None, now: float,
                lost_after: float) -> str | None:
    """Why this task is lost, in words, or None if it is not."""
    if worker is None or task.get("state") not in OPEN_STATES:
        return None
    since = task.get("started_at") or task.get("received_at") or task.get("timestamp")
    heard = now - worker["last_heartbeat"]
    if not worker["online"] and heard > OFFLINE_GRACE:
        return f"its worker {worker['hostname']} went offline {heard:.0f} s ago"
    if heard > lost_after:
        return (f"its worker {worker['hostname']} has not been heard for {heard:.0f} s "
                f"(lost after {lost_after:g} s)")
    online_since = worker.get("online_since")
    if online_since is not None and since is not None and since < online_since:
        return (f"its worker {worker['hostname']} restarted {now - online_since:.0f} s ago, "
                "after the task began")
    return None


def workers_by_name(conn, hostnames) -> dict[str, dict[str, Any]]:
    names = sorted({h for h in hostnames if h})
    if not names:
        return {}
    rows = conn.execute(select(Worker.__table__).where(Worker.hostname.in_(names)))
    return {row["hostname"]: dict(row) for row in rows.mappings()}
