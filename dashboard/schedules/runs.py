"""An entry's runs in the history: same task name *and* the same arguments.

Worker events carry arguments as Celery's saferepr of what the sender passed, so beat's
args list [1, 2] arrives as "[1, 2]" (a tuple as "(1, 2)"); an entry matches either
rendering. Runs of the same task with other arguments belong to other entries (or to
code calling the task directly) and are never shown as this entry's. Two entries with the
same task and arguments cannot be told apart from the events; they are flagged as such.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from lookout.core.store.models import Task

RUN_COLUMNS = (Task.uuid, Task.state, Task.timestamp, Task.sent_at, Task.received_at,
               Task.started_at, Task.succeeded_at, Task.failed_at, Task.runtime, Task.worker,
               Task.exception, Task.queue)


def renderings(value: Any, empty: tuple[str, ...]) -> set[str]:
    """Every way the events may have written these arguments."""
    from celery.utils.saferepr import saferepr

    if not value:
        return set(empty)
    out = {saferepr(value)}
    if isinstance(value, (list, tuple)):
        out |= {saferepr(tuple(value)), saferepr(list(value))}
    return out


def match_key(task: str, args: Any, kwargs: Any) -> tuple:
    """Entries with equal keys share their runs (indistinguishable in the events)."""
    return (task, frozenset(renderings(args, ("()", "[]"))),
            frozenset(renderings(kwargs, ("{}",))))


def entry_runs(engine: Engine, task: str, args: Any, kwargs: Any,
               limit: int = 20, since: float | None = None) -> list[dict[str, Any]]:
    """The entry's newest runs (first sent or received at `since` or later), newest first
    by that time: a task's `timestamp`, which a retry's later send does not move."""
    query = (select(*RUN_COLUMNS)
             .where(Task.name == task,
                    Task.args.in_(renderings(args, ("()", "[]"))),
                    Task.kwargs.in_(renderings(kwargs, ("{}",))))
             .order_by(Task.timestamp.desc(), Task.uuid.desc()).limit(limit))
    if since is not None:
        query = query.where(Task.timestamp >= since)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]
