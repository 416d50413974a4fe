"""The history writer: the one thread that turns buffered events into database rows.

It takes batches from the `EventBuffer` and writes each in one transaction, so the cost
of a commit is shared by thousands of events. A batch that cannot be written because the
database is away is kept and retried with backoff (events are never dropped for that);
a batch the database refuses because of its content is split and written event by event,
so one poisonous event costs only itself. After each commit it acknowledges the batch's
broker tokens and hands a small summary to listeners (the live UI).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from lookout.collectors import merge, metrics_writer, rollup_writer, task_writer, worker_writer
from lookout.collectors.buffer import EventBuffer
from lookout.collectors.label_caps import LabelCaps
from lookout.collectors.events import Event
from lookout.collectors.lease import JobLease
from lookout.collectors.outage_log import OutageLog
from lookout.collectors.planner_statistics import PlannerStatistics
from lookout.collectors.retention import Pruner
from lookout.collectors.stats import CollectorStats
from lookout.core.config import Settings
from lookout.core.store.db import error_line

log = logging.getLogger(__name__)

SUMMARY_TASK_LIMIT = 500  # changed task rows sent to listeners per batch
FIRST_BACKOFF = 0.5


@dataclass
class BatchSummary:
    """What one committed batch changed, small enough to push to browsers."""

    events: int = 0
    stored: int = 0
    duplicates: int = 0
    dropped: int = 0
    states: Counter = field(default_factory=Counter)  # new task events by resulting state
    tasks: list[dict[str, Any]] = field(default_factory=list)
    tasks_truncated: bool = False
    workers: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: "BatchSummary") -> None:
        self.events += other.events
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.dropped += other.dropped
        self.states.update(other.states)
        room = SUMMARY_TASK_LIMIT - len(self.tasks)
        self.tasks.extend(other.tasks[:room])
        self.tasks_truncated |= other.tasks_truncated or len(other.tasks) > room
        self.workers.extend(other.workers)


def _is_poison(error: BaseException) -> bool:
    """True when the batch's content, not the database's availability, is at fault."""
    if isinstance(error, (sa_exc.IntegrityError, sa_exc.DataError)):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        return False  # operational, connection, missing table...: retry later
    return isinstance(error, (sa_exc.StatementError, ValueError, TypeError, OverflowError,
                              KeyError, ArithmeticError))


class HistoryWriter:
    """Write buffered events to the history store from a thread named "lookout-writer"."""

    def __init__(self, engine: Engine, buffer: EventBuffer, settings: Settings,
                 stats: CollectorStats, on_commit: Callable[[list[Any]], None] | None = None,
                 listeners: Iterable[Callable[[BatchSummary], None]] = (),
                 prune_interval: float = 5.0,
                 prepare: Callable[[], None] | None = None) -> None:
        self.engine = engine
        # Run (and retried like a write) before the first batch: the schema upgrade of a
        # collector that started while its store was away (cli.collect).
        self.prepare = prepare
        self.buffer = buffer
        self.settings = settings
        self.stats = stats
        self.on_commit = on_commit
        self.listeners = list(listeners)
        self.prune_interval = prune_interval
        self.pruner = Pruner(engine, settings)
        self.statistics = PlannerStatistics(engine)
        # Collectors side by side on one store: one of them prunes.
        self._housekeeping_outage = OutageLog(log, "retention and planner statistics")
        self.prune_lease = JobLease(engine, "retention", max(30.0, 6 * prune_interval),
                                    time.time, settings.collector_name)
        self.label_caps = LabelCaps({
            "name": settings.metrics_max_task_names, "hostname": settings.metrics_max_hostnames,
            "queue": settings.metrics_max_queues, "exception": settings.metrics_max_exceptions})
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._give_up_at: float | None = None
        self._gave_up = False
        self._last_prune = 0.0
        self._in_hand: tuple[list[Event], list[Any]] | None = None  # the batch being written

    # -- the synchronous core -------------------------------------------------------

    def write_batch(self, events: Sequence[Event], tokens: Sequence[Any] = ()) -> BatchSummary:
        """Write `events` in one transaction; a refused batch is split in halves.

        Raises only when the database is unavailable; the caller keeps the batch.
        """
        # The batch's age while it is being written (and retried): a stalled store shows
        # as a growing lag (CollectorStats.current_write_lag); cleared once written.
        oldest = min(e.local_received for e in events) if events else None
        self.stats.unwritten_since = oldest
        try:
            summary = self._write_once(events)
        except Exception as error:  # noqa: BLE001 - classified below
            if not _is_poison(error):
                raise
            log.warning("batch of %d events refused (%s); writing it in halves",
                        len(events), error.__class__.__name__)
            summary = self._write_halves(events, error)
        self.stats.stored += summary.stored
        self.stats.duplicates += summary.duplicates
        self.stats.dropped += summary.dropped
        if oldest is not None:
            self.stats.write_lag = max(0.0, time.time() - oldest)
        self.stats.unwritten_since = None
        self._after_commit(summary, list(tokens))
        return summary

    def _write_once(self, events: Sequence[Event]) -> BatchSummary:
        task_events, copies = task_writer.unique_events(e for e in events if e.is_task)
        worker_events = [e for e in events if not e.is_task]
        summary = BatchSummary(events=len(events))
        try:
            with self.engine.begin() as conn:
                task_writer.tune_connection(conn)
                new = task_writer.insert_timeline(conn, task_events)
                task_writer.serialize_merges(conn)
                saved = task_writer.save_tasks(conn, new)
                names = {uuid: row["name"] for uuid, row in saved.merged.items()}
                counters = rollup_writer.accumulate(new, names)
                rollup_writer.count_final_states(counters, saved.before, saved.merged)
                if saved.named_late:
                    rollup_writer.reattribute(conn, counters, saved.named_late, new)
                rollup_writer.save_rollups(conn, counters)
                self.label_caps.load(conn)
                metrics_writer.save_totals(conn, metrics_writer.accumulate(
                    new, saved.merged, self.label_caps, saved.before))
                self.label_caps.save(conn)
                summary.workers = worker_writer.save_workers(
                    conn, worker_writer.coalesce(worker_events))
        except BaseException:
            self.label_caps.forget()  # what a rolled-back batch admitted is not stored
            raise
        summary.stored = len(new) + len(worker_events)
        summary.duplicates = copies + len(task_events) - len(new)
        summary.states = merge.new_states(new, saved.before)
        summary.tasks = saved.changed[:SUMMARY_TASK_LIMIT]
        summary.tasks_truncated = len(saved.changed) > SUMMARY_TASK_LIMIT
        return summary

    def _write_halves(self, events: Sequence[Event], error: Exception) -> BatchSummary:
        """Bisect a refused batch down to the events the database refuses alone.

        One poison event in 5,000 costs about 2 x log2(5,000) = 26 transactions rather
        than 5,000 (one per event), so a poison a second no longer stalls the writer.
        `error` is why the whole batch was just refused: it is not tried again.
        """
        total = BatchSummary()
        pending: list[tuple[list[Event], Exception | None]] = [(list(events), error)]
        while pending:
            part, refused = pending.pop()
            if refused is None:
                try:
                    total.add(self._write_once(part))
                    continue
                except Exception as exc:  # noqa: BLE001 - classified below
                    if not _is_poison(exc):
                        raise
                    refused = exc
            if len(part) > 1:
                middle = len(part) // 2
                pending += [(part[middle:], None), (part[:middle], None)]  # first half first
                continue
            # Counted as dropped (the writer's counter), not as rejected: that counter
            # belongs to the receive thread and means "invalid", not "unstorable".
            event = part[0]
            total.events += 1
            total.dropped += 1
            log.error("dropped unstorable %s event %s: %s", event.type,
                      event.uuid or event.hostname, refused)
        return total

    def _after_commit(self, summary: BatchSummary, tokens: list[Any]) -> None:
        """Ack the broker and notify listeners; their failures never undo a commit."""
        if tokens and self.on_commit is not None:
            try:
                self.on_commit(tokens)
            except Exception:  # noqa: BLE001 - a broker hiccup must not stop the writer
                log.exception("on_commit failed for %d tokens", len(tokens))
        for listener in self.listeners:
            try:
                listener(summary)
            except Exception:  # noqa: BLE001 - one bad listener must not stop the writer
                log.exception("listener %r failed", listener)

    # -- the thread --------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("HistoryWriter already started")
        self._thread = threading.Thread(target=self._run, name="lookout-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Write what is still buffered, then end the thread; True if everything was written.

        Writing stops at `timeout` (the database away, or too much to write in time):
        the batch in hand goes back to the buffer, whose owner decides what becomes of the
        rest (`EventBuffer.keep_rest`: spilled to disk, or left unacked in the broker).
        """
        if self._thread is None:
            return True
        self._give_up_at = time.monotonic() + timeout
        self._stopping.set()
        self.buffer.wake()
        self._thread.join(timeout + 5.0)
        alive = self._thread.is_alive()
        if alive:
            log.error("writer thread did not stop within %.1fs", timeout)
        else:
            self._thread = None
            self.prune_lease.release()  # another collector may prune at once
        return not alive and not self._gave_up and len(self.buffer) == 0

    def stuck_batch(self) -> tuple[list[Event], list[Any]] | None:
        """The batch a writer that failed to stop is still inside (a hung database call).

        Its owner keeps a copy (spilled or left unacked); should the call commit after
        all, the copy is a duplicate the timeline key drops.
        """
        if self._thread is not None and self._thread.is_alive():
            return self._in_hand
        return None

    def __enter__(self) -> "HistoryWriter":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            if stopping and time.monotonic() >= (self._give_up_at or 0.0):
                self._gave_up = len(self.buffer) > 0
                if self._gave_up:
                    log.warning("stop deadline reached with %d events unwritten",
                                len(self.buffer))
                break
            events, tokens = self.buffer.get_batch(
                self.settings.batch_size, 0.0 if stopping else self.settings.flush_interval)
            if events or tokens:
                self._in_hand = (events, tokens)
                written = self._write_with_retry(events, tokens)
                self.stats.unwritten_since = None  # given up: back in the buffer
                self._in_hand = None
                if not written:
                    break
            elif stopping:
                break
            self._maybe_prune()

    def _write_with_retry(self, events: list[Event], tokens: list[Any]) -> bool:
        """Write one batch, retrying while the database is away; False when giving up."""
        delay = FIRST_BACKOFF
        while True:
            try:
                if self.prepare is not None:
                    self.prepare()
                    self.prepare = None
                self.write_batch(events, tokens)
                if self.stats.last_write_error is not None:
                    self.stats.last_write_error = None  # the store is back
                return True
            except Exception as error:  # noqa: BLE001 - never let the thread die
                self.stats.last_write_error = f"{error.__class__.__name__}: {error}"[:500]
                log.warning("writing %d events failed, retrying in %.1fs: %s",
                            len(events), delay, error_line(error))
            if self._stopping.is_set():
                left = (self._give_up_at or 0.0) - time.monotonic()
                if left <= 0:
                    self._gave_up = True
                    self.buffer.put_back(events, tokens)
                    log.error("database still away at the stop deadline: %d events "
                              "unwritten", len(self.buffer))
                    return False
                time.sleep(min(delay, left))
            else:
                self._stopping.wait(delay)  # a stop request cuts the wait short
            delay = min(delay * 2, self.settings.reconnect_max_backoff)

    def _maybe_prune(self) -> None:
        """Prune a little when idle-ish, never while a backlog is waiting; and refresh the
        planner's statistics when due (planner_statistics.py)."""
        now = time.monotonic()
        if (now - self._last_prune < self.prune_interval
                or len(self.buffer) > self.settings.batch_size // 4):
            return
        self._last_prune = now
        try:
            if self.prune_lease.acquire():
                self.pruner.prune_step(time.time())
                self.statistics.refresh_if_due()
        except Exception as exc:  # noqa: BLE001 - housekeeping; retry next time
            self._housekeeping_outage.failed(exc)
        else:
            self._housekeeping_outage.succeeded()
