"""The collector process: receiver, writer and status reporter wired together.

Threads with one job each: "lookout-receiver" drains the broker into the `EventBuffer`,
"lookout-writer" commits batches (and acks them through the receiver), "lookout-status"
keeps the `collector_status` row fresh, and the queue sampler records queue depth.
Stopping runs in the order that loses nothing: stop receiving, write what is buffered,
ack it, close the broker connection, write the final status row.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any, Callable, Iterable

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from lookout.collectors.buffer import EventBuffer
from lookout.collectors.queues import QueueSampler
from lookout.collectors.receiver import EventReceiver
from lookout.collectors.alerts.engine import AlertEngine
from lookout.collectors.reconcile import Reconciler, backend_of
from lookout.collectors.spill import SpillFile, spill_path
from lookout.collectors.stats import CollectorStats
from lookout.collectors.status import (
    NameInUse,
    StatusReporter,
    ensure_name_free,
    warn_sqlite_neighbours,
)
from lookout.collectors.writer import HistoryWriter
from lookout.core.config import Settings, redact_url
from lookout.core.store.db import make_engine

log = logging.getLogger(__name__)

# How long a side job (queue sampling, alerts, reconciling, status) may take to end its
# round at stop, whatever is left of the flush timeout: a queue sample waits out an
# `inspect active_queues` broadcast (1.5 s by default).
JOB_GRACE = 10.0


class Collector:
    """One running collector; use `start()`/`stop()` or `with Collector(settings):`."""

    def __init__(self, settings: Settings, engine: Engine | None = None,
                 listeners: Iterable[Callable[[Any], None]] = ()):
        _load_transport(settings.broker_url)  # first: nothing to release if it fails
        self.settings = settings
        self._own_engine = engine is None
        self.engine = engine if engine is not None else make_engine(settings.database_url)
        self.stats = CollectorStats()
        self.buffer = EventBuffer(memory_limit=settings.backlog_memory << 20)
        # Called from the writer thread with each committed batch's summary (the live UI
        # forwards them to browsers). May grow while running: see `add_listener`.
        self.listeners: list[Callable[[Any], None]] = list(listeners)
        # Called with each list of validated events as they are decoded (before they are
        # written): the live push (collectors/push.py). May grow: see `add_observer`.
        self.observers: list[Callable[[list], None]] = []
        self.receiver = EventReceiver(settings, self.buffer, self.stats)
        try:
            ensure_name_free(self.engine, settings.collector_name)
        except NameInUse:
            if self._own_engine:
                self.engine.dispose()
            raise
        warn_sqlite_neighbours(self.engine, settings.collector_name)
        if settings.backlog_memory > 0:  # before the writer: a spill left by a stop comes first
            self.buffer.attach_spill(SpillFile(
                spill_path(settings.data_folder(), settings.collector_name,
                           settings.database_url),
                self.receiver.expand))
        self.writer = HistoryWriter(self.engine, self.buffer, settings, self.stats,
                                    on_commit=self.receiver.on_commit,
                                    listeners=[self._notify],
                                    prepare=settings.extra.get("store_upgrade"))
        self.status = StatusReporter(self.engine, settings, self.stats, self.buffer)
        self.queues = QueueSampler.from_settings(settings, self.engine)
        self.alerts = AlertEngine(self.engine, settings)
        app = settings.extra.get("celery_app")
        self.reconciler = Reconciler(self.engine, self.buffer, settings, app,
                                     stats=self.stats) \
            if backend_of(app) is not None else None
        self._should_stop = threading.Event()
        self._flushed = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def add_listener(self, listener: Callable[[Any], None]) -> None:
        """Subscribe to batch summaries; safe before or after `start()`."""
        self.listeners.append(listener)

    def add_observer(self, observer: Callable[[list], None]) -> None:
        """Be handed validated events as they are decoded; safe before or after start()."""
        self.observers.append(observer)
        self.receiver.on_events = self._observe  # from now on it decodes every message

    def _observe(self, events: list) -> None:
        for observer in tuple(self.observers):
            try:
                observer(events)
            except Exception:  # noqa: BLE001 - a live push problem must not cost events
                log.exception("event observer %r failed", observer)

    def _notify(self, summary: Any) -> None:
        for listener in tuple(self.listeners):
            try:
                listener(summary)
            except Exception:  # noqa: BLE001 - one bad subscriber must not starve others
                log.exception("batch listener %r failed", listener)

    def start(self) -> "Collector":
        if self._thread is not None:
            raise RuntimeError("collector already started")
        self.status.start()
        self.queues.start()
        self.alerts.start()
        if self.reconciler is not None:
            self.reconciler.start()
        self.writer.start()
        self._thread = threading.Thread(target=self.receiver.run, name="lookout-receiver",
                                        args=(self._should_stop, self._flushed), daemon=True)
        self._thread.start()
        log.info("collector %r started: %s -> %s", self.settings.collector_name,
                 redact_url(self.settings.broker_url), redact_url(self.settings.database_url))
        return self

    def alive(self) -> bool:
        """True while the receive thread runs (it only ends when asked to)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = None, asked: bool = False) -> bool:
        """Flush for at most `timeout` (LOOKOUT_STOP_TIMEOUT), keep the rest, stop every thread.
        `asked`: an operator stopped it (SIGTERM, Ctrl-C), so its status row says stopped.

        What the writer could not store in time is spilled to disk on Redis (the next
        start writes it first) and left unacked on RabbitMQ (the broker redelivers it).
        True when nothing was lost.
        """
        if self._stopped:
            return True
        self._stopped = True
        if asked:  # the receiver's disconnect below is this stop, not a broker outage
            self.status.stopping_on_request()
        if timeout is None:
            timeout = self.settings.stop_timeout
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        self._should_stop.set()
        # The side jobs hold no events: told now, they end their round while the writer
        # flushes, and are waited for before the engine is disposed (below).
        self.queues.request_stop()
        self.alerts.request_stop()
        if self.reconciler is not None:  # it feeds the writer: stopped before it
            self.reconciler.stop(max(left(), JOB_GRACE))
        if self._thread is not None:
            # No more events may enter the buffer once the writer drains it for the last time.
            self.receiver.idle.wait(left())
        self.writer.stop(left())
        stuck = self.writer.stuck_batch()
        if stuck is not None:
            self.buffer.put_back(*stuck)
        spilled, redelivered, lost = self.buffer.keep_rest()
        self.buffer.close_spill()
        self.stats.dropped += lost
        if spilled or redelivered or lost:
            log.warning("stopped with events unwritten: %d spilled for the next start, %d "
                        "left unacked for redelivery, %d lost", spilled, redelivered, lost)
        flushed = lost == 0
        self._flushed.set()  # lets the receiver ack the last commit, then disconnect
        if self._thread is not None:
            self._thread.join(max(2.0, left()))  # time to ack the last commit
            if self._thread.is_alive():
                log.error("receiver thread did not stop within %.1fs", timeout)
        self.queues.stop(max(left(), JOB_GRACE))
        self.alerts.stop(max(left(), JOB_GRACE))
        self.status.stop(max(left(), JOB_GRACE), asked=asked)
        if self._own_engine:
            # Last: a thread using the engine after this would open a new pool that nobody
            # closes (each job's stop logs an error when its thread did not end).
            self.engine.dispose()
        log.info("collector stopped: %d events received, %d stored, %d duplicates, "
                 "%d dropped", self.stats.received, self.stats.stored,
                 self.stats.duplicates, self.stats.dropped)
        return flushed

    def __enter__(self) -> "Collector":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _load_transport(broker_url: str) -> None:
    """Import the broker's kombu transport (and its client library) in this thread, before
    the threads that use it start. The receiver, the queue sampler and the broadcasts
    imported it at the same moment: a concurrent import of the redis package once left
    kombu's Redis transport without redis (`redis.Redis` on None) and the receiver thread
    dead (seen once in a full test run on a loaded machine). A kombu Connection resolves
    its transport class when made; it connects only when used. A scheme kombu does not
    know ("redsi://"), or a transport whose import fails in any way (kombu's kafka
    transport without confluent_kafka is a NameError), is a ValueError here: one line
    from the CLI, not a traceback or a dead thread."""
    from kombu import Connection

    try:
        Connection(broker_url).release()
    except Exception as exc:  # noqa: BLE001 - kombu's and its client libraries' code
        raise ValueError(f"broker {redact_url(broker_url)}: "
                         f"{_transport_failure(broker_url, exc)}") from None


def _transport_failure(broker_url: str, exc: Exception) -> str:
    """Why the transport did not load: kombu's own words for an unknown scheme or a
    missing module ("No such transport: foo", "No module named 'botocore'"), otherwise
    the error named, since its text alone ("name 'KafkaException' is not defined") does
    not say that the transport's import failed."""
    if isinstance(exc, (KeyError, ValueError, ImportError)):
        return str(exc.args[0] if exc.args else exc)
    scheme = broker_url.partition("://")[0]
    return (f"kombu's {scheme!r} transport failed to load ({type(exc).__name__}: {exc}); "
            "is the client library it needs installed?")


def _live_publisher(collector: Collector, settings: Settings, waiting: bool):
    """With a message queue, web processes elsewhere get live updates from this one.

    Imported only then: the push module pulls in python-socketio and engineio, which a
    collector without listeners never uses. The channel is named after the store's
    deployment id: while the store is away at start this returns None (asked again each
    second; `waiting`: already said so), the events meanwhile kept for the writer as usual.
    """
    if not settings.message_queue:
        return None
    from lookout.collectors.push import install_external

    try:
        return install_external(collector, settings)
    except sa_exc.SQLAlchemyError as exc:
        if not waiting:
            log.warning("live updates to web processes wait for the store: %s", exc)
        return None


def run_collector(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT, then flush and return 0 (1 if events could not be written)."""
    stop = threading.Event()
    handled = (signal.SIGTERM, signal.SIGINT)
    previous: dict[int, Any] = {}

    def request_stop(signum: int, _frame: Any) -> None:
        log.info("%s received: flushing and stopping (again to quit at once)",
                 signal.Signals(signum).name)
        for number, handler in previous.items():
            signal.signal(number, handler)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for number in handled:
            previous[number] = signal.signal(number, request_stop)
    try:
        collector = Collector(settings)
        publisher = _live_publisher(collector, settings, waiting=False)
        collector.start()
        healthy = True
        try:
            while not stop.wait(1.0):
                if not collector.alive():
                    log.error("receiver thread ended unexpectedly")
                    healthy = False
                    break
                if publisher is None and settings.message_queue:  # the store back yet?
                    publisher = _live_publisher(collector, settings, waiting=True)
        finally:
            flushed = collector.stop(asked=stop.is_set() and healthy)
            if publisher is not None:
                publisher.stop()  # after the collector: its last batch is pushed too
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0 if healthy and flushed else 1
