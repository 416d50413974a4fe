"""Remote control of Celery workers: validate, check existence, broadcast, collect replies.

Every command goes through one `broadcaster` callable, so tests can put a spy there and
prove that a refused or invalid request sent nothing. The order of checks is always:
arguments are valid (400), the task or worker exists in the history store (404), the
task is still unfinished where that matters (409); only then is anything broadcast, with
reply=True and a timeout, and each worker's reply is returned. An unreachable broker is
503. Read-only mode and roles are checked before this layer, by the views.

A revoke sent is also noted in `revoke_requests`: a worker holding an ETA task announces
the revoke (task-revoked) only when the ETA comes, and the history shows the task as
"revoke pending" until then rather than as if the revoke had failed.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from lookout.core.broadcast import Broadcaster
from lookout.core.celery_client import BrokerUnavailable
from lookout.core.store.models import RevokeRequest, Task, Worker
from lookout.dashboard.control.args import (
    WORKER_COMMANDS,
    parse_rate,
    parse_signal,
    parse_time_limits,
)
from lookout.dashboard.history.query import TaskFilters, TaskQuery, parse_sort
from lookout.dashboard.web.errors import ApiError, bad_parameter

log = logging.getLogger(__name__)
tasks = Task.__table__
workers = Worker.__table__
revokes = RevokeRequest.__table__

UNFINISHED = ("PENDING", "RECEIVED", "STARTED", "RETRY")


def normalise_replies(raw: list[dict], destination: list[str] | None,
                      timeout: float) -> list[dict]:
    """[{hostname: reply}, ...] -> [{worker, ok, reply}]; silent destinations listed too."""
    replies = []
    for item in raw:
        for hostname, reply in (item or {}).items():
            ok = not (isinstance(reply, dict) and "error" in reply)
            replies.append({"worker": hostname, "ok": ok, "reply": reply})
    answered = {r["worker"] for r in replies}
    for hostname in destination or ():
        if hostname not in answered:
            replies.append({"worker": hostname, "ok": False, "reply": None,
                            "error": f"no reply within {timeout:g}s"})
    return sorted(replies, key=lambda r: r["worker"])


class ControlService:
    """The control commands the API offers; each returns what was sent and the replies."""

    def __init__(self, engine: Engine, broadcaster: Broadcaster, history,
                 reply_timeout: float = 1.0, bulk_cap: int = 1000, batch_size: int = 100,
                 batch_pause: float = 0.2):
        self.engine = engine
        self.broadcaster = broadcaster
        self.history = history
        self.reply_timeout = reply_timeout
        self.bulk_cap = bulk_cap
        self.batch_size = batch_size
        self.batch_pause = batch_pause

    # -- tasks ---------------------------------------------------------------------
    def revoke(self, task_id: str, terminate: bool = False, signal: str | None = None) -> dict:
        signal = parse_signal(signal) if terminate else None
        with self.engine.connect() as conn:
            state = conn.execute(select(tasks.c.state).where(tasks.c.uuid == task_id)).scalar()
        if state is None:
            raise ApiError(404, f"no task with id {task_id[:100]!r}")
        if state not in UNFINISHED:
            raise ApiError(409, f"task already finished ({state}): nothing to revoke")
        params = {"terminate": terminate, "signal": signal}
        sent_at = self.history.clock()
        result = self._send("revoke", {"task_id": task_id, **params}, None, [task_id], params)
        self.note_revokes([task_id], sent_at)
        return result

    def bulk_matches(self, filters: TaskFilters) -> dict:
        """The unfinished tasks `filters` select: count, ids (up to the cap), a sample."""
        if filters.states and set(filters.states) - set(UNFINISHED):
            raise bad_parameter("state", f"bulk revoke only applies to unfinished tasks "
                                f"({', '.join(UNFINISHED)})")
        if not filters.states:
            filters = dataclasses.replace(filters, states=UNFINISHED)
        page = self.history.list_tasks(TaskQuery(filters=filters, sort=parse_sort("timestamp"),
                                                 limit=self.bulk_cap))
        count = len(page.items) if page.next_cursor is None else max(page.total,
                                                                     self.bulk_cap + 1)
        return {"count": count, "cap": self.bulk_cap, "over_cap": count > self.bulk_cap,
                "ids": [item["uuid"] for item in page.items],
                "sample": page.items[:20]}

    def bulk_revoke(self, ids: list[str], terminate: bool, signal: str | None,
                    progress: Callable[[int, list[dict]], None] = lambda done, replies: None
                    ) -> list[dict]:
        """Revoke in batches with a pause between them, reporting progress after each."""
        replies: list[dict] = []
        for start in range(0, len(ids), self.batch_size):
            if start:
                time.sleep(self.batch_pause)  # spread the load on broker and workers
            batch = ids[start:start + self.batch_size]
            sent_at = self.history.clock()
            raw = self._broadcast("revoke", {"task_id": batch, "terminate": terminate,
                                             "signal": signal}, None)
            self.note_revokes(batch, sent_at)
            replies.extend(normalise_replies(raw, None, self.reply_timeout))
            progress(start + len(batch), replies)
        return replies

    def note_revokes(self, ids: list[str], sent_at: float) -> None:
        """Record that a revoke of `ids` was sent at `sent_at` (the latest request winning),
        taken before the broadcast: the reply wait must not make the request look later
        than the worker's task-revoked. An id longer than any task id (Flower's revoke
        takes any) names no task to show."""
        rows = [{"task_uuid": i, "requested_at": sent_at}
                for i in dict.fromkeys(ids) if len(i) <= 255]
        if not rows:
            return
        # The revoke is sent already: failing to note it (two operators at once, which the
        # upsert allows for, or a store gone away) must not turn its answer into a 500.
        try:
            with self.engine.begin() as conn:
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                insert = dialect.insert(revokes)
                conn.execute(insert.on_conflict_do_update(
                    index_elements=[revokes.c.task_uuid],
                    set_={"requested_at": insert.excluded.requested_at}), rows)
        except SQLAlchemyError:
            log.exception("could not note the revoke of %d tasks", len(rows))

    # -- limits --------------------------------------------------------------------
    def rate_limit(self, task_name: str, rate: str | None,
                   destination: list[str] | None) -> dict:
        rate = parse_rate(rate)
        self._known_task_name(task_name)
        destination = self._known_workers(destination)
        params = {"task_name": task_name, "rate_limit": rate, "destination": destination}
        return self._send("rate_limit", {"task_name": task_name, "rate_limit": rate},
                          destination, destination or [task_name], params)

    def time_limit(self, task_name: str, soft: Any, hard: Any,
                   destination: list[str] | None) -> dict:
        soft, hard = parse_time_limits(soft, hard)
        self._known_task_name(task_name)
        destination = self._known_workers(destination)
        params = {"task_name": task_name, "soft": soft, "hard": hard,
                  "destination": destination}
        return self._send("time_limit", {"task_name": task_name, "soft": soft, "hard": hard},
                          destination, destination or [task_name], params)

    # -- workers -------------------------------------------------------------------
    def worker_command(self, hostname: str, command: str, arguments: dict[str, Any]) -> dict:
        """pool_grow/shrink, autoscale, pool_restart, add/cancel_consumer, shutdown."""
        arguments = WORKER_COMMANDS[command](arguments)
        self._known_workers([hostname])
        return self._send(command, arguments, [hostname], [hostname], arguments)

    # -- internals -----------------------------------------------------------------
    def _send(self, command: str, arguments: dict, destination: list[str] | None,
              targets: list[str], params: dict) -> dict:
        raw = self._broadcast(command, arguments, destination)
        return {"command": command, "targets": targets, "parameters": params,
                "replies": normalise_replies(raw, destination, self.reply_timeout)}

    def _broadcast(self, command: str, arguments: dict, destination: list[str] | None):
        try:
            return self.broadcaster(command, arguments, destination, self.reply_timeout)
        except BrokerUnavailable as exc:
            raise ApiError(503, str(exc)) from None

    def _known_task_name(self, task_name: Any) -> None:
        if not isinstance(task_name, str) or not task_name or len(task_name) > 255:
            raise bad_parameter("task_name", "a task name is required")
        with self.engine.connect() as conn:
            seen = conn.execute(select(tasks.c.uuid).where(tasks.c.name == task_name)
                                .limit(1)).first()
        if seen is None:
            # Flower's words (its /api/task/rate-limit shares this check): the history,
            # not the app's registry, is what "unknown" means here.
            raise ApiError(404, f"Unknown task {task_name[:100]!r}")

    def _known_workers(self, destination: Any) -> list[str] | None:
        if destination in (None, [], ""):
            return None  # every worker
        if isinstance(destination, str):
            destination = [destination]
        if not isinstance(destination, list) or not all(isinstance(h, str) for h in destination):
            raise bad_parameter("destination", "a list of worker hostnames")
        with self.engine.connect() as conn:
            known = set(conn.execute(select(workers.c.hostname)
                                     .where(workers.c.hostname.in_(destination))).scalars())
        unknown = [h for h in destination if h not in known]
        if unknown:
            raise ApiError(404, f"Unknown worker {unknown[0][:100]!r}")  # Flower's words
        return list(dict.fromkeys(destination))
