"""Collector-side live push: coalesce what changed, emit a few times a second.

The receiver hands a `LivePublisher` every batch of validated events as it decodes them
(`observe`): counters and task rows come from the event stream, folded by
collectors.live_rows, so what browsers see does not wait for the database (the write lag
grows under load; the push does not). The history writer still calls it after each
commit (a writer listener) for worker rows and to fill task rows from the store. Both
calls only merge into dicts under a lock; a thread named "lookout-push" wakes every
`interval` seconds and emits what accumulated: one message per room per tick, whatever
the event rate. At 10,000 events/s a browser still gets two small messages a second.

On Redis every collector of a redundant pair hears every event, so only the one holding
the "live" lease pushes (the other would double every counter); on RabbitMQ collectors
sharing a queue each hear their own share, and each pushes it.

The emitter is anything with flask_socketio's `emit(event, data, to=, namespace=)`: the
web app's `socketio` when collector and web share a process (`lookout run`), or a
write-only manager in a standalone collector (collectors/message_queue.py), whose messages
reach every web process subscribed to the same Redis channel. That manager drops what it
cannot publish without a word, so the push thread checks the queue itself (a probe), puts
the answer in the collector's status row for /healthz, and skips its emits while the
queue is unreachable instead of waiting on each one.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any, Callable, Iterable, Mapping

from lookout.collectors.lease import JobLease
from lookout.collectors.outage_log import OutageLog
from lookout.collectors.live_channel import live_channel
from lookout.collectors.live_rates import LiveRates
from lookout.collectors.live_rows import EarlyRows
from lookout.collectors.message_queue import MessageQueueProbe, external_emitter, probe_for
from lookout.collectors.watched import WatchedTasks, watched_tasks_for

# The Socket.IO namespace of the live pages (dashboard/live serves it).
NAMESPACE = "/live"

log = logging.getLogger(__name__)

ROW_TEXT = 200  # characters of args/kwargs/result/exception sent to browsers
TEXT_FIELDS = ("args", "kwargs", "result", "exception")
ROW_FIELDS = ("uuid", "name", "state", "expired", "worker", "queue", "retries", "root_id",
              "parent_id", "eta", "timestamp", "received_at", "started_at", "succeeded_at",
              "failed_at", "runtime", "queue_wait", "updated_at", *TEXT_FIELDS)
FINISHED = ("SUCCESS", "FAILURE")


def install_external(collector: Any, settings: Any) -> "LivePublisher | None":
    """In a standalone collector, push to web processes through the message queue.

    Returns the started publisher (stop it after the collector, so the last batch goes
    out), or None when no message queue is configured: then nobody could listen.
    """
    if not settings.message_queue:
        return None
    channel = live_channel(settings, collector.engine)
    publisher = LivePublisher(external_emitter(settings.message_queue, channel))
    publisher.watched = watched_tasks_for(settings.message_queue, channel)
    publisher.probe = probe_for(settings.message_queue, channel)
    attach(publisher, collector)
    return publisher.start()


def attach(publisher: "LivePublisher", collector: Any) -> None:
    """Feed `publisher` from `collector`'s decoded events and commits (see module doc)."""
    publisher.early = True
    publisher.source = collector.settings.collector_name
    publisher.stats = collector.stats
    collector.stats.live_rates = publisher.rates  # its status row carries the last minute
    collector.add_observer(publisher.observe)
    collector.add_listener(publisher)
    if collector.settings.broker_url.startswith(("redis", "rediss")):
        publisher.gate = LiveLease(collector.engine, collector.settings.collector_name)


class LiveLease:
    """True while this collector holds the "live" lease; renewed at most every RENEW s.

    Short, unlike the other jobs' leases: when the holder dies, the other collector of the
    pair takes over within TTL + RENEW (9 s), before a page's beat watch calls live
    updates stalled (10 s without a beat); the lease costs one small write every RENEW s.
    """

    RENEW = 2.0
    TTL = 7.0

    def __init__(self, engine: Any, owner: str, clock: Callable[[], float] = time.time):
        self.lease = JobLease(engine, "live", self.TTL, clock, owner)
        self._outage = OutageLog(log, "live lease")
        self.clock = clock
        self._held, self._checked = False, float("-inf")

    def __call__(self) -> bool:
        now = self.clock()
        if now - self._checked >= self.RENEW:
            self._checked = now
            try:
                self._held = self.lease.acquire()
            except Exception as exc:  # noqa: BLE001 - the store is away: keep pushing
                self._outage.failed(exc)
            else:
                self._outage.succeeded()
        return self._held

    def release(self) -> None:
        """Let the other collector (or this one restarted) take over at once."""
        if self._held:
            self._held = False
            self.lease.release()


def slim(row: Mapping[str, Any]) -> dict:
    """The columns a live row needs, long texts cut: what a table cell can show."""
    out = {}
    for name in ROW_FIELDS:
        value = row.get(name)
        if name in TEXT_FIELDS and isinstance(value, str) and len(value) > ROW_TEXT:
            value = value[:ROW_TEXT]
        out[name] = value
    return out


class LivePublisher:
    """Writer listener plus the push thread; start()/stop() or use as a context manager."""

    def __init__(self, emitter: Any, interval: float = 0.5, max_rows: int = 200,
                 max_task_rooms: int = 500, namespace: str = NAMESPACE,
                 clock=time.time) -> None:
        self.emitter = emitter
        self.interval = interval
        self.max_rows = max_rows
        self.max_task_rooms = max_task_rooms
        self.namespace = namespace
        self.clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_flush = clock()
        self.rates = LiveRates()
        # The collector's name in its overview messages: collectors sharing a RabbitMQ
        # queue each push their share, which pages add up (overview.js).
        self.source = ""
        # Set by `attach`: counters and rows from observed events, commits fill the rows.
        self.early = False
        self._early_rows = EarlyRows()
        self.gate: Callable[[], bool] | None = None  # None: always push
        # Which task rooms someone watches (collectors/watched.py); None: emit to every one.
        self.watched: WatchedTasks | None = None
        # The message queue's check (collectors/message_queue.py), and the collector's
        # counters its answer goes to (`live`, shown by /healthz); None: in process.
        self.probe: MessageQueueProbe | None = None
        self.stats: Any = None
        self._queue_was_reachable = True
        self._reset()

    def _reset(self) -> None:
        # Insertion-ordered: a task changed again moves to the end, so the newest survive.
        self._tasks: dict[str, Mapping] = {}
        self._workers: dict[str, Mapping] = {}
        self._counts: Counter = Counter()
        self._events = 0
        self._truncated = False

    # -- receive thread ------------------------------------------------------------------
    def observe(self, events: Iterable[Any]) -> None:
        """Fold validated events (collectors.events.Event) into counters and rows."""
        with self._lock:
            rows, states = self._early_rows.fold(events)
            self._merge_rows(rows)
            self._counts.update(states)
            self._events += len(states)

    # -- writer thread ------------------------------------------------------------------
    def __call__(self, summary: Any) -> None:
        """Merge one committed batch's summary (collectors.writer.BatchSummary).

        Called from the writer thread: only dict updates under the lock, never the network.
        """
        with self._lock:
            if self.early:  # counted when observed; the store only fills gaps in rows
                filled = [self._early_rows.fill_from(row) for row in summary.tasks]
                self._merge_rows(row for row in filled if row is not None)
            else:
                self._merge_rows(summary.tasks)
                self._counts.update(summary.states)
                self._events += summary.events
            # The writer keeps only the first rows of a huge batch: say so to the pages.
            self._truncated |= bool(summary.tasks_truncated)
            for row in summary.workers:
                hostname = row.get("hostname")
                if hostname:
                    self._workers[hostname] = row

    def _merge_rows(self, rows: Iterable[Mapping]) -> None:
        pending = self._tasks
        for row in rows:
            uuid = row.get("uuid")
            if not uuid:
                continue
            pending.pop(uuid, None)
            pending[uuid] = row
        # Keep far more than one tick shows, so task rooms still get their rows.
        while len(pending) > self.max_task_rooms:
            del pending[next(iter(pending))]
            self._truncated = True

    # -- push thread ----------------------------------------------------------------------
    def flush(self) -> int:
        """Emit everything accumulated since the last flush; returns the messages sent."""
        with self._lock:
            tasks, workers = self._tasks, self._workers
            counts, events, truncated = self._counts, self._events, self._truncated
            self._reset()
        now = self.clock()
        elapsed = max(now - self._last_flush, 1e-3)
        self._last_flush = now  # what was dropped below is not counted as a quiet time
        if not self._queue_reachable():
            return 0  # dropped: pages resync from the API when the beats come back
        if self.gate is not None and not self.gate():
            return 0  # another collector of a Redis pair pushes the same events
        finished = sum(counts.get(state, 0) for state in FINISHED)
        events_rate, finished_rate = self.rates.tick(now, elapsed, events, finished)
        worker_rows = [dict(row) for row in workers.values()]
        # Every page listens for this: its absence means live updates stopped (a message
        # queue outage, no collector) and its return that the page must resync (common.js).
        sent = self._emit("beat", "beat", {"t": now})
        sent += self._emit("overview", "overview", {
            "t": now, "collector": self.source, "interval": round(elapsed, 3), "events": events,
            "events_per_second": events_rate, "tasks_per_second": finished_rate,
            "counts": dict(counts), "workers": worker_rows})
        rows = [slim(row) for row in tasks.values()]
        if rows:
            newest = rows[-self.max_rows:]
            sent += self._emit("tasks", "tasks", {
                "t": now, "tasks": newest, "truncated": truncated or len(newest) < len(rows)})
        # Asked only when there are rows to send: an idle tick costs Redis nothing.
        watched = self.watched.current() if self.watched is not None and rows else None
        for row in rows:
            if watched is None or row["uuid"] in watched:
                sent += self._emit("task", f"task:{row['uuid']}", {"t": now, "task": row})
        for row in worker_rows:
            sent += self._emit("worker", f"worker:{row['hostname']}", {"t": now, "worker": row})
        return sent

    def _queue_reachable(self) -> bool:
        """Ask the probe (it caches its answer), report the answer in the stats, and log
        each change once (python-socketio's own lines say only "Cannot publish")."""
        if self.probe is None:
            return True
        answer = self.probe.check()
        if self.stats is not None:
            self.stats.live = answer
        reachable = answer["ok"] is not False
        if reachable != self._queue_was_reachable:
            if reachable:
                log.info("message queue reachable again: live updates to web processes "
                         "resume")
            else:
                log.warning("message queue unreachable, live updates to web processes "
                            "paused until it answers: %s", answer["error"])
            self._queue_was_reachable = reachable
        return reachable

    def _emit(self, event: str, room: str, data: dict) -> int:
        self.emitter.emit(event, data, to=room, namespace=self.namespace)
        return 1

    def _run(self) -> None:
        failing = False
        while not self._stopping.wait(self.interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - a Redis hiccup must not end live updates
                if not failing:  # once per outage, not twice a second
                    log.exception("live push failed; retrying every tick")
                failing = True
            else:
                if failing:
                    log.info("live push works again")
                failing = False

    def start(self) -> "LivePublisher":
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="lookout-push",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after one last flush, so the final batch is not lost."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout)
        self._thread = None
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - shutting down; the history is in the store
            log.warning("final live push failed", exc_info=True)
        release = getattr(self.gate, "release", None)
        if release is not None:
            release()
        if self.watched is not None:
            self.watched.close()
        if self.probe is not None:
            self.probe.close()

    def __enter__(self) -> "LivePublisher":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
