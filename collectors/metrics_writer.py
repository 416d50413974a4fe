"""Prometheus totals, added per batch in the transaction that stores the events.

Counters and histograms under celery-exporter's names (`celery_task_*_total{name,
hostname,queue_name}`, `celery_task_runtime`, `celery_task_queue_wait_time`) and Flower's
(`flower_events_total{worker,type,task}`, `flower_task_runtime_seconds{worker,task}`) are
summed in memory for a batch and added in SQL (`value = value + delta`). Only events the
timeline insert reported as new are counted, so a duplicate never counts twice, even with
two collectors; and since the totals live in the store, /metrics answers the same from
every web process and keeps counting across restarts instead of starting from zero.

Labels come from the merged task row (name, queue) and the event (hostname). Each label
kind admits a capped number of distinct values (collectors/label_caps.py); later values
count as "other", so a flood of generated task names cannot explode the series count.
"""
from __future__ import annotations

import functools
import json
import math
import re
from bisect import bisect_left
from collections import Counter
from typing import Any, Iterable

from sqlalchemy import Connection

from lookout.collectors.events import Event
from lookout.collectors.merge import final_repeat
from lookout.collectors.label_caps import MAX_LABEL, LabelCaps
from lookout.core.store.models import MetricTotal

TASK_COUNTERS = {
    "task-sent": "celery_task_sent_total", "task-received": "celery_task_received_total",
    "task-started": "celery_task_started_total",
    "task-succeeded": "celery_task_succeeded_total",
    "task-failed": "celery_task_failed_total", "task-rejected": "celery_task_rejected_total",
    "task-revoked": "celery_task_revoked_total", "task-retried": "celery_task_retried_total",
}
# prometheus_client's default buckets, which Flower and celery-exporter use too.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
           math.inf)
# celery_task_runtime and celery_task_queue_wait_time go on to an hour: with the defaults
# the largest finite bound is 10 s, so histogram_quantile never says more than 10 s and
# the shipped "p95 runtime above a minute" rule could never fire (a trial). Flower's own
# histogram keeps Flower's buckets.
LONG_BUCKETS = BUCKETS[:-1] + (30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, math.inf)
BUCKETS_OF = {"celery_task_runtime": LONG_BUCKETS, "celery_task_queue_wait_time": LONG_BUCKETS,
              "flower_task_runtime_seconds": BUCKETS}


def le_labels(buckets: tuple[float, ...] = BUCKETS) -> tuple[str, ...]:
    """The `le` label of each bucket, as Prometheus writes it."""
    return tuple("+Inf" if b == math.inf else repr(float(b)) for b in buckets)


_LE_OF = {buckets: le_labels(buckets) for buckets in set(BUCKETS_OF.values())}
_EXCEPTION_TYPE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*\(")


def labels_key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=1 << 16)
def _stored_labels(items: tuple[tuple[str, str], ...]) -> str:
    """`labels_key` of a series' label items, remembered: a batch adds to hundreds of
    series (23 buckets per histogram), the same ones batch after batch, and encoding
    their keys anew took 14 % of the collector's GIL samples (py-spy, 60k-event burst);
    `write_batch` is 7-8 % cheaper without it. The label caps keep the distinct sets far
    below the bound."""
    return labels_key(dict(items))


def exception_type(text: Any) -> str:
    """'RuntimeError' from the event's repr "RuntimeError('boom')"."""
    match = _EXCEPTION_TYPE.match(str(text or ""))
    return match.group(1)[:MAX_LABEL] if match else "unknown"


def bucket_label(value: float, buckets: tuple[float, ...] = BUCKETS) -> str:
    """The `le` of the first of `buckets` holding `value`, as Prometheus writes it."""
    if value != value:  # NaN is in no finite bucket
        return "+Inf"
    return _LE_OF[buckets][bisect_left(buckets, value)]


_ANONYMOUS_NODE = re.compile(r"gen\d+@")


def host_label(hostname: str | None) -> str | None:
    """The hostname label of an event: a process that sends tasks without a node name of
    its own is `gen<pid>@<host>` in Celery (its task-sent events), so every web or script
    process was one more label value, filling the hostname cap until a new real worker's
    counters went to "other" (seen in a trial). They count under `gen@<host>`."""
    if hostname and _ANONYMOUS_NODE.match(hostname):
        return "gen@" + hostname.split("@", 1)[1]
    return hostname


class Totals(dict):
    """(metric, label items) -> amount to add. Labels stay tuples here (this runs per
    event); they become the stored JSON key once per series, in save_totals."""

    def add(self, metric: str, labels: dict[str, str], amount: float = 1.0) -> None:
        key = (metric, tuple(labels.items()))
        self[key] = self.get(key, 0.0) + amount

    def observe(self, metric: str, labels: dict[str, str], value: float) -> None:
        self.observe_many(metric, labels, [value])

    def observe_many(self, metric: str, labels: dict[str, str], values: list[float]) -> None:
        """A histogram's buckets, sum and count for `values` (nothing when there are none)."""
        if not values:
            return
        buckets = BUCKETS_OF[metric]
        for le, count in Counter(bucket_label(v, buckets) for v in values).items():
            self.add(metric + "_bucket", {**labels, "le": le}, count)
        self.add(metric + "_sum", labels, sum(values))
        self.add(metric + "_count", labels, len(values))


def accumulate(events: Iterable[Event], rows: dict[str, dict[str, Any]],
               caps: LabelCaps, before: dict[str, dict[str, Any]] | None = None) -> Totals:
    """The batch's additions for its new task events; `rows` are the merged task rows,
    `before` the stored rows they were merged into.

    A task's final transition counts once in celery_task_*_total and celery_task_runtime
    (a repeat: `merge.final_repeat`); repeats still count in flower_events_total and
    flower_task_runtime_seconds, which count events, as Flower does.

    Events are first tallied per distinct (type, raw labels), and the labels and series
    are worked out once per tally: a batch of thousands of events has a few dozen. Adding
    series per event was a fifth of the writer's time (py-spy, 150k-event burst).
    `tests/unit/collectors/test_metrics_tally.py` pins this to the per-event reading.
    Capped label values are admitted in the order their first event came, as per event.
    """
    before = before or {}
    finished: set[tuple[str | None, str]] = set()  # (uuid, type) of final events counted
    tallies: dict[tuple, list] = {}  # raw key -> [events, observed values]
    for event in events:
        row = rows.get(event.uuid) or _NO_ROW
        kind = event.type
        repeat = final_repeat(event, before, finished)
        if kind == "task-succeeded":
            value = event.fields.get("runtime")
        elif kind == "task-started":
            value = row.get("queue_wait")
        else:
            value = None
        exc = event.fields.get("exception") if kind == "task-failed" else None
        key = (kind, row.get("name"), event.hostname,
               row.get("queue") or row.get("routing_key"),
               None if exc is None else exception_type(exc), repeat)
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = [0, []]
        tally[0] += 1
        if value is not None:
            tally[1].append(value)
    totals = Totals()
    for key, (count, values) in tallies.items():
        kind, raw_name, raw_host, raw_queue, exc_type, repeat = key
        name = caps.value("name", raw_name)
        host = caps.value("hostname", host_label(raw_host))  # once per tally, not event
        task = {"name": name, "hostname": host, "queue_name": caps.value("queue", raw_queue)}
        metric = None if repeat else TASK_COUNTERS.get(kind)
        if metric == "celery_task_failed_total":
            totals.add(metric, {**task, "exception": caps.value(
                "exception", exc_type or "unknown")}, count)
        elif metric is not None:
            totals.add(metric, task, count)
        totals.add("flower_events_total", {"worker": host, "type": kind, "task": name}, count)
        if kind == "task-succeeded":
            runtimes = [v for v in values if isinstance(v, (int, float))]
            if not repeat:
                totals.observe_many("celery_task_runtime", task, runtimes)
            totals.observe_many("flower_task_runtime_seconds", {"worker": host, "task": name},
                                runtimes)
        elif kind == "task-started":
            waits = [v for v in values if isinstance(v, (int, float)) and v >= 0]
            totals.observe_many("celery_task_queue_wait_time", task, waits)
    return totals


_NO_ROW: dict[str, Any] = {}


def save_totals(conn: Connection, totals: Totals) -> None:
    """Add the batch's amounts to the stored series (new series are inserted)."""
    if not totals:
        return
    rows: dict[tuple[str, str], float] = {}
    for (metric, items), value in totals.items():
        key = (metric, _stored_labels(items))
        rows[key] = rows.get(key, 0.0) + value
    # Sorted: concurrent collectors lock the rows in one order (no deadlock). Straight to
    # the driver's executemany: SQLAlchemy's parameter handling of a generic insert cost
    # more than the statement.
    conn.exec_driver_sql(_UPSERT[conn.dialect.name == "postgresql"],
                         [(m, k, v) for (m, k), v in sorted(rows.items())])


_UPSERT = {
    postgres: f"INSERT INTO {MetricTotal.__tablename__} (metric, labels, value) "
              f"VALUES ({', '.join([mark] * 3)}) ON CONFLICT (metric, labels) DO UPDATE "
              f"SET value = {MetricTotal.__tablename__}.value + excluded.value"
    for postgres, mark in ((False, "?"), (True, "%s"))}
