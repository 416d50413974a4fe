"""Lost tasks: work a worker held when it died, which no event will ever finish.

A task RECEIVED or STARTED on a worker is *lost* when that worker
  - said goodbye (worker-offline) more than OFFLINE_GRACE ago: a warm shutdown finishes its
    tasks first, so one still open was killed or its last events were missed;
  - has sent nothing for `lost_after` (kill -9, a crashed host, a partition) while
    Lookout was listening: some collector connected to the broker, its status row fresh,
    for at least that long. Silence heard by nobody (every collector down, disconnected
    or just reconnected) says nothing about the worker: judging it lost then offered a
    retry of a task still running, which ran it twice (found in an outage trial);
  - started again after the task began (a new worker-online or pid): the old process,
    and the task with it, is gone.
A lost task that never started (RECEIVED: prefetched, or held for its ETA) is not gone
for good: Celery acknowledges a task's message when the task starts (unless acks_late),
so the broker delivers one never started again, RabbitMQ at once when the dead worker's
connection closes, Redis once its visibility timeout passes (an hour by default). For
REDELIVERY_WINDOW after its worker was last heard it is flagged `redelivered`: not to be
retried (an on-call trial retried a prefetched one, and the broker's copy ran too) and
not counted by lost-task alerts; delivered again, its new task-received names a live
worker and it is no longer lost at all.
A slow task on a worker that keeps sending heartbeats is never lost, however long it runs
(that is *stuck*, judged elsewhere). Caveat: Celery's solo pool sends no heartbeat while
a task runs, so a long task there makes its worker look silent.

Lost is a flag beside the state, not a state: the history keeps what the events said.
The same SQL clause serves the task list filter, the trouble page and alert rules.

*Stuck* (StuckRule) is about the task, not the worker: open far longer than its name
usually runs (p95 from the rollups), on a worker that is still alive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, false, func, or_, select

from lookout.core import histogram
from lookout.core.store.models import CollectorStatus, Task, TaskRollup, Worker

OPEN_STATES = ("RECEIVED", "STARTED")
REDELIVERY_WINDOW = 3600.0  # kombu's default visibility timeout on Redis
OFFLINE_GRACE = 10.0  # a task's last events may trail its worker's worker-offline
# A collector's status row is rewritten every second; older than this, the collector is
# gone (crashed, killed or hung). /healthz judges collectors by the same age.
STATUS_STALE_AFTER = 10.0


def _since(task=Task):
    return func.coalesce(task.started_at, task.received_at, task.timestamp)


def _listeners(now: float) -> tuple:
    """SQL conditions on collector_status: a collector connected now, its row fresh."""
    status = CollectorStatus.__table__
    return status.c.connected.is_(True), status.c.updated_at >= now - STATUS_STALE_AFTER


def _listening(now: float, lost_after: float):
    """SQL: some collector has been hearing the broker for the last `lost_after` s."""
    status = CollectorStatus.__table__
    return exists(select(status.c.name).where(
        *_listeners(now), status.c.connected_since <= now - lost_after))


def listening_since(conn, now: float) -> float | None:
    """Since when Lookout has heard the broker without a break: the earliest
    `connected_since` of the collectors now connected with a fresh status row."""
    status = CollectorStatus.__table__
    return conn.execute(select(func.min(status.c.connected_since))
                        .where(*_listeners(now))).scalar()


def lost_clause(now: float, lost_after: float):
    """SQL condition on the tasks table: the task is lost (see the module docstring)."""
    worker = Worker.__table__.alias("lost_worker")
    gone = or_(
        and_(worker.c.online == false(), worker.c.last_heartbeat < now - OFFLINE_GRACE),
        and_(worker.c.last_heartbeat < now - lost_after, _listening(now, lost_after)),
        and_(worker.c.online_since.is_not(None), _since() < worker.c.online_since),
    )
    return and_(Task.state.in_(OPEN_STATES),
                exists(select(worker.c.hostname).where(worker.c.hostname == Task.worker,
                                                       gone)))


def lost_reason(task: dict[str, Any], worker: dict[str, Any] | None, now: float,
                lost_after: float, *, listening: float | None, ago: str = "ago") -> str | None:
    """Why this task is lost, in words, or None if it is not. `listening` is
    `listening_since(conn, now)`: a silent worker counts only if someone was listening.
    `ago` ends the times counted back from `now`: an alert's message, kept after it fired,
    says "before this alert fired" instead."""
    if worker is None or task.get("state") not in OPEN_STATES:
        return None
    since = task.get("started_at") or task.get("received_at") or task.get("timestamp")
    heard = now - worker["last_heartbeat"]
    reason = None
    if not worker["online"] and heard > OFFLINE_GRACE:
        reason = f"its worker {worker['hostname']} went offline {heard:.0f} s {ago}"
    elif heard > lost_after and listening is not None and listening <= now - lost_after:
        reason = (f"its worker {worker['hostname']} has not been heard for {heard:.0f} s "
                  f"(lost after {lost_after:g} s)")
    elif (online_since := worker.get("online_since")) is not None and since is not None \
            and since < online_since:
        reason = (f"its worker {worker['hostname']} restarted {now - online_since:.0f} s "
                  f"{ago}, after the task began")
    if reason is not None and redelivered(task, worker, now):
        reason += REDELIVERY_NOTE
    return reason


def redelivered(task: dict[str, Any], worker: dict[str, Any] | None, now: float) -> bool:
    """Whether a lost task is one the broker delivers again by itself (module docstring):
    never started, its worker heard less than REDELIVERY_WINDOW ago."""
    return (task.get("state") == "RECEIVED" and worker is not None
            and now - worker["last_heartbeat"] < REDELIVERY_WINDOW)


REDELIVERY_NOTE = ("; it never started, so its message goes back to its queue: the broker "
                   "delivers it again (RabbitMQ at once, Redis after its visibility timeout, "
                   "an hour by default), so do not retry it")


def lost_fields(task: dict[str, Any], worker: dict[str, Any] | None, now: float,
                lost_after: float, *, listening: float | None) -> dict[str, Any]:
    """`lost` (lost_reason) and `redelivery` (a lost task the broker gives back), as the
    API shows them on a task."""
    reason = lost_reason(task, worker, now, lost_after, listening=listening)
    return {"lost": reason, "redelivery": reason is not None and redelivered(task, worker, now)}


def workers_by_name(conn, hostnames) -> dict[str, dict[str, Any]]:
    names = sorted({h for h in hostnames if h})
    if not names:
        return {}
    rows = conn.execute(select(Worker.__table__).where(Worker.hostname.in_(names)))
    return {row["hostname"]: dict(row) for row in rows.mappings()}


@dataclass(frozen=True)
class StuckRule:
    """Open longer than `factor` x the name's p95 runtime, at least `minimum`; `default`
    when the name has no runtime history yet."""
    factor: float = 10.0
    minimum: float = 60.0
    default: float = 3600.0

    @classmethod
    def from_settings(cls, settings) -> "StuckRule":
        return cls(settings.stuck_factor, settings.stuck_min, settings.stuck_default)

    def limit(self, p95: float | None) -> tuple[float, str]:
        if p95 is None:
            return self.default, "no runtime history for this name yet"
        return (max(self.minimum, self.factor * p95),
                f"{self.factor:g} x its p95 runtime of {p95:.3g} s")

    def reason(self, task: dict[str, Any], p95: float | None, now: float) -> str | None:
        """Why this open task is stuck, or None. A task waiting for its ETA is not."""
        if task.get("state") not in OPEN_STATES:
            return None
        eta = task.get("eta")  # epoch seconds
        if eta is not None and eta > now:
            return None
        since = task.get("started_at") or task.get("received_at")
        if since is None:
            return None
        limit, basis = self.limit(p95)
        open_for = now - since
        if open_for <= limit:
            return None
        said = f"for {open_for:.0f} s, over {limit:.0f} s ({basis})"
        if task["state"] == "STARTED":
            return f"running {said}"
        # A worker holds prefetched tasks until a process is free, and rate-limited ones
        # until their turn: "stuck" alone read as a hung task (an on-call trial).
        return (f"received and not started {said}: waiting in "
                f"{task.get('worker') or 'its worker'} behind its running tasks "
                f"(prefetched) or a rate limit")


def usual_runtimes(conn, since: float) -> dict[str, float]:
    """p95 runtime per task name from the rollups since `since`."""
    rows = conn.execute(select(TaskRollup.name, TaskRollup.runtime_hist).where(
        TaskRollup.bucket >= since, TaskRollup.runtime_hist.is_not(None)))
    return {name: p for name, hist in histogram.merge_by_name(rows).items()
            if (p := histogram.percentiles(hist, (95,))[95]) is not None}


def open_tasks(conn, limit: int) -> list[dict[str, Any]]:
    """RECEIVED and STARTED tasks, oldest first (the candidates for lost and stuck)."""
    columns = [c for c in Task.__table__.c if c.name not in ("traceback", "result")]
    return [dict(r) for r in conn.execute(
        select(*columns).where(Task.state.in_(OPEN_STATES))
        .order_by(Task.timestamp, Task.uuid).limit(limit)).mappings()]
