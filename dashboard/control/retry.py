"""Retry: send a finished task again, by name, with the arguments its events recorded.

Events carry arguments as repr() text: Celery's saferepr, cut at 1024 characters and at
three levels of nesting (written as '...'), then Lookout's own max_field_size. A retry is
sent only when that text parses back exactly: Python literals (`ast.literal_eval`),
nothing cut by either cap, no '...' standing for what saferepr left out. Anything else
is refused with the reason: a retry must never run with arguments that differ from the
original's. Only finished tasks are retried, and lost ones (their worker died with them:
core/trouble.py). The new task goes to the original's queue (or routing key) and is linked to
the original in `task_links`, which both task pages show.
"""
from __future__ import annotations

import ast
import dataclasses
import time
import uuid as uuids
from typing import Any, Callable

from sqlalchemy import Engine, insert, select

from lookout.core.store.models import QueueSample, Task, TaskLink
from lookout.core.trouble import listening_since, lost_fields, workers_by_name
from lookout.core.truncation import was_cut
from lookout.dashboard.history.query import TaskFilters, TaskQuery, parse_sort
from lookout.dashboard.web.errors import ApiError, bad_parameter

FINAL = ("SUCCESS", "FAILURE", "REVOKED", "REJECTED")
CELERY_REPR_CAP = 1024  # Celery's argsrepr_maxsize / kwargsrepr_maxsize defaults
MAX_LINKS = 20  # retries of retries followed back for routing
# A queue sample older than this says nothing about consumers now (the collector samples
# every few seconds; none for 5 minutes means no collector samples).
SAMPLE_FRESH = 300.0
COLUMNS = (Task.uuid, Task.name, Task.state, Task.args, Task.kwargs, Task.queue,
           Task.exchange, Task.routing_key, Task.worker, Task.started_at, Task.received_at,
           Task.timestamp)


class RetryRefused(Exception):
    """Why a task cannot be retried faithfully."""


def rebuild(text: str | None, expected: type, what: str) -> Any:
    """The Python value an args/kwargs text stands for, or RetryRefused."""
    if text is None or text == "":
        return () if expected is tuple else {}
    if was_cut(text):
        raise RetryRefused(f"its {what} were cut by Lookout's max field size")
    if len(text) >= CELERY_REPR_CAP - 3:
        raise RetryRefused(f"its {what} reached Celery's {CELERY_REPR_CAP}-character repr "
                           "limit, so they may have been cut")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise RetryRefused(f"its {what} are not plain Python literals ({text[:80]}), so "
                           "they cannot be rebuilt from the events") from None
    if _has_ellipsis(value):
        raise RetryRefused(f"its {what} were shortened by Celery's repr ('...')")
    if expected is tuple and isinstance(value, (list, tuple)):
        return value  # a list stays a list: the retry's events then read the same
    if expected is dict and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return value
    raise RetryRefused(f"its {what} are not a {'list' if expected is tuple else 'dict'}")


def _has_ellipsis(value: Any) -> bool:
    if value is Ellipsis:
        return True
    if isinstance(value, dict):
        return any(_has_ellipsis(k) or _has_ellipsis(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_ellipsis(v) for v in value)
    return False


def plan(row: dict[str, Any]) -> dict[str, Any]:
    """What a retry of this task would send, or why it cannot."""
    out = {"uuid": row["uuid"], "name": row["name"], "state": row["state"], "refused": None}
    try:
        if not row["name"]:
            raise RetryRefused("its name is unknown (its task-received event was not seen)")
        if row["state"] not in FINAL and not row.get("lost"):
            raise RetryRefused(f"it is {row['state']}: only finished or lost tasks are "
                               "retried (revoke it first)")
        if row.get("redelivery"):
            raise RetryRefused("its worker died before starting it, so the broker delivers "
                               "it again by itself (its message was never acknowledged): a "
                               "retry would run it twice; it can be retried once an hour has "
                               "passed without it running")
        out["args"] = rebuild(row["args"], tuple, "args")
        out["kwargs"] = rebuild(row["kwargs"], dict, "kwargs")
    except RetryRefused as exc:
        out["refused"] = str(exc)
        return out
    options: dict[str, Any] = {}
    if row["queue"]:
        options["queue"] = row["queue"]
    elif row["routing_key"]:
        options.update(routing_key=row["routing_key"], exchange=row["exchange"] or "")
    out["options"] = options
    return out


def destination_queue(options: dict[str, Any]) -> str | None:
    """The queue a retry goes to, where its options tell (see `plan`)."""
    if options.get("queue"):
        return options["queue"]
    if options.get("routing_key") and not options.get("exchange"):
        return options["routing_key"]  # the default exchange routes by queue name
    return None


class TaskRetrier:
    def __init__(self, engine: Engine, history, sender, bulk_cap: int,
                 clock: Callable[[], float] = time.time, lost_after: float = 60.0):
        self.engine, self.history, self.sender = engine, history, sender
        self.bulk_cap, self.clock, self.lost_after = bulk_cap, clock, lost_after

    def _rows(self, ids: list[str]) -> list[dict[str, Any]]:
        """Task rows; a Lookout retry whose routing the events did not tell (no
        task-sent seen) takes its original's, following the links."""
        with self.engine.connect() as conn:
            found = {r["uuid"]: dict(r) for r in conn.execute(
                select(*COLUMNS).where(Task.uuid.in_(ids))).mappings()}
            for row in found.values():
                current = row["uuid"]
                for _ in range(MAX_LINKS):
                    if row["queue"] or row["routing_key"]:
                        break
                    current = conn.execute(select(TaskLink.retry_of).where(
                        TaskLink.task_uuid == current)).scalar()
                    if current is None:
                        break
                    origin = conn.execute(select(Task.queue, Task.exchange, Task.routing_key)
                                          .where(Task.uuid == current)).mappings().first()
                    if origin is not None:
                        row.update(origin)
            workers = workers_by_name(conn, [r["worker"] for r in found.values()])
            now = self.clock()
            listening = listening_since(conn, now)
        for row in found.values():  # a lost task died with its worker: it may be retried
            row.update(lost_fields(row, workers.get(row["worker"]), now, self.lost_after,
                                   listening=listening))
        return [found[i] for i in ids if i in found]

    def retry(self, task_id: str, actor: str | None) -> dict[str, Any]:
        rows = self._rows([task_id])
        if not rows:
            raise ApiError(404, f"no task with id {task_id[:100]!r}")
        planned = plan(rows[0])
        if planned["refused"]:
            raise ApiError(409, f"cannot retry {task_id}: {planned['refused']}")
        sent = self._sent_again([task_id]).get(task_id)  # two people pressing Retry
        if sent is not None:                             # ran a task twice
            raise ApiError(409, f"cannot retry {task_id}: already sent again from Lookout as "
                                f"{sent.task_uuid} (by {sent.created_by or 'someone'}); "
                                "retry that one, it carries the same arguments")
        return {**self._send(planned, actor), "warnings": self.unconsumed_warnings([planned])}

    def _sent_again(self, ids: list[str]) -> dict[str, Any]:
        """Task id -> the newest retry Lookout sent of it (task_uuid, created_by)."""
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(TaskLink.retry_of, TaskLink.task_uuid,
                                       TaskLink.created_by)
                                .where(TaskLink.retry_of.in_(ids))
                                .order_by(TaskLink.created_at)).all()
        return {row.retry_of: row for row in rows}  # the newest wins

    def unconsumed_warnings(self, plans: list[dict[str, Any]]) -> list[str]:
        """Why retries to these plans' queues may never run: the queue's last sample found
        no consumer (an on-call trial retried into a queue whose workers were gone, and
        saw only "sent")."""
        queues = {q for p in plans if not p["refused"]
                  if (q := destination_queue(p["options"])) is not None}
        now = self.clock()
        warnings = []
        with self.engine.connect() as conn:
            for queue in sorted(queues):
                last = conn.execute(
                    select(QueueSample.timestamp, QueueSample.messages, QueueSample.consumers)
                    .where(QueueSample.queue == queue)
                    .order_by(QueueSample.timestamp.desc()).limit(1)).first()
                if last is None or last.consumers != 0 or last.timestamp < now - SAMPLE_FRESH:
                    continue
                warnings.append(
                    f"queue {queue!r} had no consumer when last sampled "
                    f"{max(0, now - last.timestamp):.0f} s ago ({last.messages} messages "
                    "waiting): a retry sent there waits until a worker consumes it")
        return warnings

    def _send(self, planned: dict[str, Any], actor: str | None) -> dict[str, Any]:
        new_id = str(uuids.uuid4())
        self.sender.send(planned["name"], planned["args"], planned["kwargs"],
                         task_id=new_id, **planned["options"])
        with self.engine.begin() as conn:
            conn.execute(insert(TaskLink).values(task_uuid=new_id, retry_of=planned["uuid"],
                                                 created_by=actor, created_at=self.clock()))
        return {"task_id": new_id, "retry_of": planned["uuid"], "name": planned["name"],
                "args": repr(planned["args"])[:500], "kwargs": repr(planned["kwargs"])[:500],
                "options": planned["options"]}

    def matches(self, filters: TaskFilters) -> dict[str, Any]:
        """The finished tasks `filters` select (failed ones unless a state is given)."""
        if filters.states and set(filters.states) - {*FINAL, "EXPIRED"}:
            raise bad_parameter("state", f"only finished tasks are retried ({', '.join(FINAL)})")
        if not filters.states:
            filters = dataclasses.replace(filters, states=("FAILURE",))
        page = self.history.list_tasks(TaskQuery(filters=filters, sort=parse_sort("timestamp"),
                                                 limit=self.bulk_cap))
        count = len(page.items) if page.next_cursor is None else max(page.total,
                                                                     self.bulk_cap + 1)
        return self._matched([i["uuid"] for i in page.items], count)

    def matches_ids(self, ids: list[str]) -> dict[str, Any]:
        """`matches` for tasks named by id (one failure group: failures/service.py)."""
        return self._matched(ids[:self.bulk_cap], len(ids))

    def _matched(self, ids: list[str], count: int) -> dict[str, Any]:
        plans = [plan(row) for row in self._rows(ids)]
        again = self._sent_again(ids)  # never twice by a bulk either
        for planned in plans:
            if not planned["refused"] and planned["uuid"] in again:
                planned["refused"] = (f"already sent again from Lookout (as "
                                      f"{again[planned['uuid']].task_uuid})")
        refused = [{"uuid": p["uuid"], "name": p["name"], "reason": p["refused"]}
                   for p in plans if p["refused"]]
        return {"count": count, "cap": self.bulk_cap, "over_cap": count > self.bulk_cap,
                "retriable": len(plans) - len(refused), "refused": refused[:50],
                "refused_count": len(refused), "plans": plans,
                "warnings": self.unconsumed_warnings(plans)}

    def retry_many(self, plans: list[dict[str, Any]], actor: str | None) -> list[dict]:
        return [self._send(p, actor) for p in plans if not p["refused"]]
