"""The Flower API's answers, from Lookout's services: history, fleet, queues and controls.

Task lists are the one query of its own here: Flower pages with limit and offset and
sorts by its own keys, which the history's keyset pages cannot do; its filters are the
history's (history/task_sql.py), its search Flower's syntax (search.py). The rest calls
the services every other API uses, so a command sent here is checked, sent and recorded
exactly like one sent through /api/v1, except where Flower's behaviour is kept on purpose
(see `revoke`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine, func, select

from lookout.collectors.queues import QueueSampler
from lookout.core.inspector import Inspector
from lookout.core.store.models import Task, TaskEvent
from lookout.dashboard.control.args import parse_signal
from lookout.dashboard.control.service import ControlService, normalise_replies
from lookout.dashboard.flowerapi import search
from lookout.dashboard.flowerapi.params import TaskListQuery
from lookout.dashboard.flowerapi.shapes import control_message, flower_task, timeline_facts
from lookout.dashboard.flowerapi.workers import WorkerCache
from lookout.dashboard.history.service import HistoryService
from lookout.dashboard.history.task_sql import conditions
from lookout.dashboard.web.cost_cache import CostCache
from lookout.dashboard.web.errors import ApiError, bad_parameter, broker_down

tasks = Task.__table__
events = TaskEvent.__table__

# Chars of each text field in task lists (/api/task/info has them whole). Above Celery's
# own 1024-character reprs with their ellipsis (Flower listed 1,035 where 1,024 cut the
# closing quote: the list's args no longer parsed), so only long exceptions and
# tracebacks are cut.
LIST_TEXT = 2048
TEXT_FIELDS = ("args", "kwargs", "result", "exception", "traceback")
SORT_COLUMNS = {"name": "name", "state": "state", "received": "received_at",
                "started": "started_at"}
IN_CHUNK = 500  # ids per IN (...) when fetching what a page's tasks need from elsewhere
# Native parameter name -> Flower's, for the 400s of the services called with them.
FLOWER_NAMES = {"rate_limit": "ratelimit", "destination": "workername"}


@dataclass
class FlowerService:
    """Answers for the Flower-compatible endpoints; one per app, safe to share."""

    engine: Engine
    history: HistoryService
    control: ControlService
    inspector: Inspector
    sampler: QueueSampler
    workers: WorkerCache
    counts: CostCache = field(default_factory=CostCache)  # the task types, by their cost

    # -- tasks ---------------------------------------------------------------------
    def list_tasks(self, query: TaskListQuery) -> tuple[list[tuple[str, dict]], bool]:
        """(id, task) pairs in order (Flower answers them as one object keyed by id), and
        whether more tasks match past this page: one row more is read to know."""
        dialect = self.engine.dialect.name
        # Flower matches taskname and workername whatever their case: each becomes the
        # stored names it folds to, so the name and worker indexes still serve the list.
        filters, exact = query.filters, []
        if filters.name is not None:
            exact.append(tasks.c.name.in_(_any_case(filters.name, self.task_types())))
        if filters.worker is not None:
            exact.append(tasks.c.worker.in_(_any_case(filters.worker, self.task_workers())))
        where = conditions(replace(filters, name=None, worker=None), dialect) + exact
        if query.search:
            matched = search.condition(query.search, dialect)
            if matched is not None:
                where.append(matched)
        if query.limit == 0:
            return [], False
        stmt = (select(*_list_columns()).where(*where).order_by(*_order(query.sort_by))
                .offset(query.offset).limit(query.limit + 1))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
            more = len(rows) > query.limit
            rows = rows[:query.limit]
            ids = [row["uuid"] for row in rows]
            children = _children(conn, ids)
            facts = _facts(conn, ids)
        listed = []
        for row in rows:
            task = flower_task(row, *facts.get(row["uuid"], (None, None)),
                               children.get(row["uuid"], ()))
            task["worker"] = task.pop("worker")  # last, as in Flower's lists
            listed.append((row["uuid"], task))
        return listed, more

    def task(self, task_id: str) -> dict[str, Any]:
        """One task with its fields whole; 404 when the history does not know it."""
        try:
            task = self.history.get_task(task_id)
        except ApiError as exc:
            if exc.status == 404:
                raise ApiError(404, f"Unknown task '{task_id[:200]}'") from None
            raise
        clock, client = timeline_facts(task["timeline"])
        return flower_task(task, clock, client, [child["uuid"] for child in task["children"]])

    def task_types(self) -> list[str]:
        """Every task name in the history, sorted (cached: it reads a whole index)."""
        names = select(tasks.c.name).where(tasks.c.name.is_not(None)).distinct()
        return self.counts.get_or_compute("task types", lambda: self._names(names))

    def task_workers(self) -> list[str]:
        """Every worker the history's tasks name, sorted (cached like the task types)."""
        names = select(tasks.c.worker).where(tasks.c.worker.is_not(None)).distinct()
        return self.counts.get_or_compute("task workers", lambda: self._names(names))

    def _names(self, stmt) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(conn.execute(stmt).scalars())

    # -- queues --------------------------------------------------------------------
    def queue_lengths(self) -> list[dict[str, Any]]:
        """Depth of every known queue now: the workers' queues, the app's, the history's."""
        active = self.workers.active_queues() or self.inspector.recent_active_queues()
        try:
            depths = self.sampler.current(active)
        except Exception as exc:  # kombu raises OperationalError and transport errors
            raise broker_down(self.sampler.settings.broker_url, exc) from None
        # Not the collectors' own event queue (RabbitMQ): Flower has none, and a script
        # summing these depths would count Lookout's backlog as the workers'.
        own = self.sampler.settings.event_queue_name
        return [{"name": d.name, "messages": d.messages} for d in depths
                if d.error is None and d.name != own]

    # -- controls ------------------------------------------------------------------
    def revoke(self, task_id: str, terminate: bool, signal: str | None) -> dict[str, Any]:
        """Revoke any id, as Flower does: a task just sent may not be in the history yet,
        and workers keep revoked ids to drop the task when it arrives."""
        params = {"terminate": terminate, "signal": parse_signal(signal) if terminate else None}
        # A broker that is down raises BrokerUnavailable: a 503 from web/errors.py.
        sent_at = self.control.history.clock()
        raw = self.control.broadcaster("revoke", {"task_id": task_id, **params}, None,
                                       self.control.reply_timeout)
        self.control.note_revokes([task_id], sent_at)
        return {"message": f"Revoked '{task_id}'", "parameters": params,
                "replies": normalise_replies(raw, None, self.control.reply_timeout)}

    def limit(self, command: str, task_name: str, values: dict[str, Any]) -> dict[str, Any]:
        """rate_limit or time_limit of one task name on one worker (Flower's workername is
        required), through ControlService: the name must be in the history."""
        with flower_names():
            if command == "rate_limit":
                rate = values["ratelimit"]
                if isinstance(rate, (int, float)) and not isinstance(rate, bool):
                    rate = str(rate)  # a form sends "200", a JSON body may send 200
                result = self.control.rate_limit(task_name, rate, [values["workername"]])
            else:
                result = self.control.time_limit(task_name, values.get("soft"),
                                                 values.get("hard"), [values["workername"]])
        ok, message = control_message(command, values["workername"], {}, result["replies"])
        return {**result, "ok": ok, "message": message}

    def worker_command(self, hostname: str, command: str, values: dict[str, Any]
                       ) -> dict[str, Any]:
        """pool_grow/shrink, autoscale, pool_restart, add/cancel_consumer, shutdown."""
        result = self.control.worker_command(hostname, command, values)
        ok, message = control_message(command, hostname, result["parameters"],
                                      result["replies"])
        return {**result, "ok": ok, "message": message}


@contextlib.contextmanager
def flower_names():
    """A 400 from a native service names Flower's parameter instead (ratelimit, ...)."""
    try:
        yield
    except ApiError as exc:
        if exc.parameter not in FLOWER_NAMES:
            raise
        detail = exc.message.split(": ", 1)[-1]
        raise bad_parameter(FLOWER_NAMES[exc.parameter], detail) from None


def _list_columns() -> list:
    """Every column, long texts cut in SQL so big rows never travel."""
    return [func.substr(column, 1, LIST_TEXT).label(column.name)
            if column.name in TEXT_FIELDS else column for column in tasks.c]


def _order(sort_by: str | None) -> tuple:
    """Flower's orders: by default the last changed first (Flower: by the time of the
    event that set the state; Lookout's indexed `updated_at` is when that event arrived);
    by a key, tasks lacking it first (last when descending), ties by id."""
    if sort_by is None:
        return tasks.c.updated_at.desc(), tasks.c.uuid.desc()
    column = tasks.c[SORT_COLUMNS[sort_by.lstrip("-")]]
    if sort_by.startswith("-"):
        return column.desc().nulls_last(), tasks.c.uuid.desc()
    return column.asc().nulls_first(), tasks.c.uuid.asc()


def _chunks(ids: list[str]):
    for start in range(0, len(ids), IN_CHUNK):
        yield ids[start:start + IN_CHUNK]


def _children(conn, ids: list[str]) -> dict[str, list[str]]:
    """Ids of the tasks sent with each of `ids` as their parent. Flower also lists a
    top-level task Celery retried as its own child; Lookout keeps no such parent."""
    found: dict[str, list[str]] = {}
    for chunk in _chunks(ids):
        rows = conn.execute(select(tasks.c.parent_id, tasks.c.uuid)
                            .where(tasks.c.parent_id.in_(chunk))
                            .order_by(tasks.c.timestamp, tasks.c.uuid))
        for parent, child in rows:
            found.setdefault(parent, []).append(child)
    return found


def _facts(conn, ids: list[str]) -> dict[str, tuple[int | None, str | None]]:
    """(clock, client) of each task, from its timeline."""
    timelines: dict[str, list[dict]] = {}
    for chunk in _chunks(ids):
        rows = conn.execute(select(events.c.task_uuid, events.c.type, events.c.hostname,
                                   events.c.timestamp, events.c.clock)
                            .where(events.c.task_uuid.in_(chunk))).mappings()
        for row in rows:
            timelines.setdefault(row["task_uuid"], []).append(row)
    return {uuid: timeline_facts(rows) for uuid, rows in timelines.items()}


def _any_case(value: str, known: list[str]) -> list[str]:
    """`value` and every known name equal to it but for case (Flower casefolds both)."""
    folded = value.casefold()
    return sorted({value, *(name for name in known if name.casefold() == folded)})
