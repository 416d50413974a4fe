"""Broker queue depth: measure it, find which queues to measure, and sample it over time.

Depth is read from the broker itself, because events never say how many messages wait:
on Redis each queue is a list (plus one list per priority step, named with kombu's
separator), on RabbitMQ a passive `queue_declare` answers with message and consumer
counts without creating anything. The `QueueSampler` stores one `QueueSample` row per
queue per interval so the Queues page can chart depth over time.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from sqlalchemy import Engine, delete, select

from lookout.core.celery_client import connection_options
from lookout.collectors import worker_queues
from lookout.collectors.lease import JobLease
from lookout.collectors.outage_log import OutageLog, is_outage
from lookout.collectors.threads import join_or_report
from lookout.core.config import Settings
from lookout.core.store.models import QueueSample, Task

log = logging.getLogger("lookout.queues")

# kombu's Redis transport defaults; a broker_transport_options entry overrides them.
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
REDIS_PRIORITY_SEP = "\x06\x16"
# Redis lists that belong to kombu itself, never task queues.
_INTERNAL_PREFIXES = ("_kombu.", "unacked", "celeryev.", "celery@", "reply.celery.pidbox")


@dataclass
class QueueDepth:
    """One queue as the broker sees it now; `error` is set when it could not be read."""

    name: str
    messages: int | None = None
    consumers: int | None = None
    # Redis only: messages per priority step (step 0 is the plain queue key).
    by_priority: dict[int, int] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.by_priority is not None:
            data["by_priority"] = {str(k): v for k, v in self.by_priority.items()}
        return data


def redis_keys(queue: str, steps: Iterable[int] = REDIS_PRIORITY_STEPS,
               sep: str = REDIS_PRIORITY_SEP) -> dict[int, str]:
    """The Redis list key of each priority step of `queue`, as kombu names them."""
    return {step: (f"{queue}{sep}{step}" if step else queue) for step in steps}


def measure(broker_url: str, names: Iterable[str],
            broker_conf: dict[str, Any] | None = None,
            connect_timeout: float = 3.0) -> list[QueueDepth]:
    """Read the depth of each named queue; raises kombu's OperationalError if unreachable.

    `broker_conf` is how the app reaches its broker (core.celery_client.app_broker_conf):
    a Redis key prefix in its transport options changes the very key names read here.
    """
    from kombu import Connection

    names = sorted(set(names))
    with Connection(broker_url, connect_timeout=connect_timeout,
                    **connection_options(broker_url, broker_conf or {})) as conn:
        conn.ensure_connection(max_retries=1)
        if conn.transport.driver_type == "redis":
            return _measure_redis(conn, names)
        if conn.transport.driver_type == "amqp":
            return _measure_amqp(conn, names)
        return [QueueDepth(n, error=f"depth not supported on {conn.transport.driver_type}")
                for n in names]


def _measure_redis(conn, names: list[str]) -> list[QueueDepth]:
    """LLEN every priority key in one pipeline; kombu's client adds any global key prefix."""
    channel = conn.default_channel
    steps = tuple(getattr(channel, "priority_steps", REDIS_PRIORITY_STEPS))
    sep = getattr(channel, "sep", REDIS_PRIORITY_SEP)
    keyed = [(name, redis_keys(name, steps, sep)) for name in names]
    with channel.client.pipeline() as pipe:
        for _, keys in keyed:
            for key in keys.values():
                pipe.llen(key)
        sizes = iter(pipe.execute())
    depths = []
    for name, keys in keyed:
        by_priority = {step: int(next(sizes)) for step in keys}
        depths.append(QueueDepth(name, messages=sum(by_priority.values()),
                                 by_priority=by_priority))
    return depths


def _measure_amqp(conn, names: list[str]) -> list[QueueDepth]:
    """Passive declare per queue; a missing queue closes the channel, so use one each."""
    from amqp.exceptions import NotFound

    depths = []
    for name in names:
        channel = conn.channel()
        try:
            _, messages, consumers = channel.queue_declare(queue=name, passive=True)
            depths.append(QueueDepth(name, messages=messages, consumers=consumers))
        except NotFound:
            depths.append(QueueDepth(name, error="queue does not exist on the broker"))
        finally:
            try:
                channel.close()
            except Exception:  # noqa: BLE001 - already closed by the broker's 404
                pass
    return depths


def app_queue_names(celery_app: Any) -> set[str]:
    """Queues a Celery app declares: its default queue and `task_queues`."""
    if celery_app is None:
        return set()
    conf = celery_app.conf
    names = {conf.task_default_queue or "celery"}
    for queue in conf.task_queues or ():
        names.add(getattr(queue, "name", None) or str(queue))
    return names


def history_queue_names(engine: Engine, since: float | None = None) -> set[str]:
    """Queues named by tasks in the history and by earlier samples."""
    with engine.connect() as conn:
        query = select(Task.queue).distinct().where(Task.queue.is_not(None))
        if since is not None:
            query = query.where(Task.timestamp >= since)
        names = set(conn.scalars(query))
        names.update(conn.scalars(select(QueueSample.queue).distinct()))
    return {n for n in names if n and not n.startswith(_INTERNAL_PREFIXES)}


def consumers_by_queue(active_queues: dict[str, list[dict]] | None) -> dict[str, int]:
    """Count workers consuming each queue from an `inspect active_queues` reply."""
    counts: dict[str, int] = {}
    for queues in (active_queues or {}).values():
        for queue in queues or ():
            name = queue.get("name")
            if name:
                counts[name] = counts.get(name, 0) + 1
    return counts


@dataclass
class QueueSampler:
    """Samples queue depth every `settings.queue_sample_interval` into `queue_samples`.

    `active_queues` (optional) returns an inspect `active_queues` reply; it discovers
    queues no task has used yet and gives Redis queues a consumer count, which Redis
    itself cannot tell. Use `start()`/`stop()` for a thread or `run(stop_event)` in one.
    """

    settings: Settings
    engine: Engine
    active_queues: Callable[[], dict[str, list[dict]] | None] | None = None
    extra_names: set[str] = field(default_factory=set)
    # Names from the history are looked up at most this often (a DISTINCT over tasks).
    names_ttl: float = 10.0
    _names: tuple[float, set[str]] = field(default=(0.0, set()), init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def queue_names(self, active: dict[str, list[dict]] | None = None) -> set[str]:
        names = set(self.extra_names) | set(consumers_by_queue(active))
        if not self.settings.broker_url.startswith(("redis", "rediss")):
            # RabbitMQ: the collectors' own durable event queue. Its depth is how far they
            # are behind the workers, and 0 consumers with messages means none collects.
            names.add(self.settings.event_queue_name)
        names |= app_queue_names(self.settings.extra.get("celery_app"))
        taken_at, known = self._names
        if time.monotonic() - taken_at > self.names_ttl:
            # A day of tasks names every queue in use without scanning all history.
            known = history_queue_names(self.engine, since=time.time() - 86400)
            self._names = (time.monotonic(), known)
        return names | known or {"celery"}

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> "QueueSampler":
        """A sampler that also asks workers which queues they consume (see class doc)."""
        from lookout.core.inspector import Inspector

        return cls(settings, engine, active_queues=Inspector.for_settings(settings).active_queues)

    def current(self, active: dict[str, list[dict]] | None = None) -> list[QueueDepth]:
        """Depth of every known queue now; `active` adds names and Redis consumer counts."""
        depths = measure(self.settings.broker_url, self.queue_names(active),
                         self.settings.broker_conf)
        if active is not None:
            consumers = consumers_by_queue(active)
            for depth in depths:
                if depth.consumers is None and depth.error is None:
                    depth.consumers = consumers.get(depth.name, 0)
        return depths

    def sample_once(self) -> list[QueueDepth]:
        """Measure every known queue now and store one row each; returns the depths."""
        active = None
        if self.active_queues is not None:
            try:
                active = self.active_queues()
            except Exception as exc:  # noqa: BLE001 - depth still works without inspect
                log.debug("active_queues failed: %r", exc)
        depths = self.current(active)
        now = time.time()
        rows = [{"queue": d.name, "timestamp": now, "messages": d.messages,
                 "consumers": d.consumers} for d in depths if d.messages is not None]
        with self.engine.begin() as conn:
            if rows:
                conn.execute(QueueSample.__table__.insert(), rows)
            # Samples are tiny but endless: keep them as long as rollups.
            conn.execute(delete(QueueSample).where(
                QueueSample.timestamp < now - self.settings.rollup_retention))
        if active:
            worker_queues.record(self.engine, active, now, self.settings.worker_retention)
        return depths

    def run(self, stop: threading.Event | None = None) -> None:
        """Sample until `stop` is set; broker or database errors are logged, not fatal.

        Only the collector holding the "queues" lease samples: collectors side by side on
        one store would otherwise each add a row per queue per interval.
        """
        stop = stop or self._stop
        interval = max(0.1, float(self.settings.queue_sample_interval))
        lease = JobLease(self.engine, "queues", max(30.0, 3 * interval), time.time,
                         self.settings.collector_name)
        outage = OutageLog(log, "queue sampling")
        while not stop.is_set():
            try:
                if lease.acquire():
                    self.sample_once()
            except Exception as exc:  # noqa: BLE001 - retry next interval
                if is_outage(exc):
                    outage.failed(exc)
                else:  # the broker: each failure says which and why, in one line
                    log.warning("queue sampling failed: %s", exc)
            else:
                outage.succeeded()
            stop.wait(interval)
        lease.release()

    def start(self) -> "QueueSampler":
        """Sample on a thread; an interval of 0 or less turns sampling off."""
        if self.settings.queue_sample_interval <= 0:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="lookout-queue-sampler",
                                        daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Let the round in flight finish, then end (see `stop`)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if join_or_report(self._thread, timeout):
            self._thread = None
