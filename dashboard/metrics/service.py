"""The /metrics body: stored totals, plus gauges read from the store at scrape time.

Nothing here counts in memory: counters are the collector's `metric_totals`, worker and
queue gauges come from the rows the collector keeps current, and the collector's own
counters from its status row (lifetime totals that survive its restarts). So every web
process answers the same, and a restart of either side never resets a counter.
"""
from __future__ import annotations

import json
import time
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import Engine, func, select

from lookout.core.store.models import CollectorStatus, MetricTotal, QueueSample
from lookout.core.trouble import STATUS_STALE_AFTER
from lookout.dashboard.metrics.families import families


QUEUE_SAMPLE_STALE_MIN = 60.0  # seconds; see MetricsService.collect


class MetricsService:
    def __init__(self, engine: Engine, fleet, settings, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.fleet = fleet  # FleetService: worker liveness as the Workers page shows it
        self.settings = settings
        self.clock = clock

    def exposition(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Scrape(self))
        return generate_latest(registry)

    def collect(self) -> Iterator:
        with self.engine.connect() as conn:
            totals = conn.execute(select(MetricTotal.metric, MetricTotal.labels,
                                         MetricTotal.value)).all()
            # A depth sampled before the broker went away is not today's depth: past a few
            # sampling intervals the series is left out (Prometheus marks it stale).
            fresh_after = self.clock() - max(QUEUE_SAMPLE_STALE_MIN,
                                             3 * self.settings.queue_sample_interval)
            newest = (select(QueueSample.queue, func.max(QueueSample.timestamp).label("t"))
                      .group_by(QueueSample.queue)
                      .having(func.max(QueueSample.timestamp) >= fresh_after).subquery())
            queues = conn.execute(
                select(QueueSample.queue, QueueSample.messages, QueueSample.consumers)
                .join(newest, (QueueSample.queue == newest.c.queue)
                      & (QueueSample.timestamp == newest.c.t))
                .order_by(QueueSample.queue).limit(self.settings.metrics_max_queues)).all()
            collectors = conn.execute(select(CollectorStatus)).mappings().all()
        yield from families(totals)
        yield from self._workers()
        yield from _queues(queues)
        yield from _collectors(collectors, self.clock())

    def _workers(self) -> Iterator:
        kept_since = self.clock() - self.settings.metrics_offline_workers_kept
        workers = sorted((w for w in self.fleet.list_workers()
                          if w["status"] != "offline" or w["last_heartbeat"] >= kept_since),
                         key=lambda w: -(w["last_heartbeat"] or 0))
        workers = workers[:self.settings.metrics_max_hostnames]

        def stopped(worker: dict) -> float:
            # It said goodbye (worker-offline: a shutdown or a deploy's retired worker),
            # not silence: the shipped WorkerDown rule leaves these out, as the
            # collectors' rules leave out a collector stopped on request.
            return float(not worker["online"] and worker["status"] == "offline")

        def active(worker: dict) -> float:  # a dead worker runs nothing, whatever it said
            return 0.0 if worker["status"] == "offline" else float(worker["active"] or 0)

        gauges = {
            "celery_worker_up": ("Worker heard within its heartbeat interval (while no "
                                 "collector listens: as last known)", "hostname",
                                 lambda w: float(self.fleet.presumed_online(w))),
            "celery_worker_tasks_active": ("Tasks running on the worker (its heartbeat)",
                                           "hostname", active),
            "flower_worker_online": ("Worker online status (Flower's metric)", "worker",
                                     lambda w: float(self.fleet.presumed_online(w))),
            "flower_worker_number_of_currently_executing_tasks": (
                "Tasks currently executing at a worker (Flower's metric)", "worker",
                active),
            "lookout_worker_stopped": ("1 when the worker said it was going offline "
                                       "(worker-offline: a shutdown), 0 otherwise",
                                       "hostname", stopped),
        }
        for name, (doc, label, value) in gauges.items():
            family = GaugeMetricFamily(name, doc, labels=[label])
            for worker in workers:
                family.add_metric([worker["hostname"]], value(worker))
            yield family


class _Scrape:
    """A prometheus_client collector for one scrape."""

    def __init__(self, service: MetricsService):
        self.service = service

    def collect(self) -> Iterator:
        return self.service.collect()


def _queues(rows) -> Iterator:
    length = GaugeMetricFamily("celery_queue_length", "Messages waiting in the queue "
                               "(the collector's last sample; absent once it is stale)",
                               labels=["queue_name"])
    consumers = GaugeMetricFamily("celery_active_consumer_count", "Consumers of the queue "
                                  "(RabbitMQ: the broker's count; Redis: workers that "
                                  "answered inspect consuming it)", labels=["queue_name"])
    for queue, messages, count in rows:
        length.add_metric([queue], float(messages))
        if count is not None:
            consumers.add_metric([queue], float(count))
    yield length
    yield consumers


_COUNTER_HELP = {
    "received": "Valid events the collector received (deliveries: a redelivery counts again)",
    "stored": "Events the collector stored",
    "reconciled": "Final events the collector read from the result backend, not received",
    "duplicates": "Events the collector received again and did not store twice",
    "dropped": "Events the collector received and could not store",
}


def _collectors(rows, now: float) -> Iterator:
    connected = GaugeMetricFamily("lookout_collector_connected",
                                  "1 while the collector is connected to the broker "
                                  "(0 once its status is stale: killed or hung)",
                                  labels=["collector"])
    lag = GaugeMetricFamily("lookout_collector_write_lag_seconds",
                            "Seconds from receiving to storing the last batch, or the age of "
                            "the batch being written when that is more (a stalled store)",
                            labels=["collector"])
    pending = GaugeMetricFamily("lookout_collector_buffer_pending",
                                "Events received and not yet stored", labels=["collector"])
    age = GaugeMetricFamily("lookout_collector_status_age_seconds",
                            "Seconds since the collector last wrote its status",
                            labels=["collector"])
    queue_up = GaugeMetricFamily("lookout_collector_message_queue_up",
                                 "1 while the collector reaches the message queue to web "
                                 "processes (absent without one, or once its status is "
                                 "stale)", labels=["collector"])
    stopped_gauge = GaugeMetricFamily(
        "lookout_collector_stopped", "1 when the collector's last status says it was stopped "
        "on request (SIGTERM, Ctrl-C): not an outage; 0 otherwise", labels=["collector"])
    counters = {name: CounterMetricFamily(f"lookout_collector_events_{name}", doc,
                                          labels=["collector"])
                for name, doc in _COUNTER_HELP.items()}
    rejected = CounterMetricFamily("lookout_collector_events_rejected",
                                   "Invalid events the collector refused, by reason",
                                   labels=["collector", "reason"])
    for row in rows:
        name = row["name"]
        stats = json.loads(row["stats"] or "{}")
        lifetime = stats.get("lifetime") or {}
        # A SIGKILLed collector's last row still says connected; /healthz calls a row
        # this old down, and so does the gauge (a stale 1 kept alerts quiet).
        fresh = now - row["updated_at"] <= STATUS_STALE_AFTER
        connected.add_metric([name], float(bool(row["connected"]) and fresh))
        # As /healthz judges it: a collector retired or restarted on purpose is no alert
        # (the shipped rules leave these out: docs/monitoring/prometheus-alerts.yml).
        stopped_gauge.add_metric([name], float(bool(stats.get("stopped"))
                                               and not row["connected"]))
        lag.add_metric([name], float(stats.get("write_lag") or 0.0))
        pending.add_metric([name], float(stats.get("buffer_pending") or 0))
        age.add_metric([name], max(0.0, now - row["updated_at"]))
        live = stats.get("live")
        if fresh and isinstance(live, dict):
            queue_up.add_metric([name], float(live.get("ok") is True))
        for key, family in counters.items():
            family.add_metric([name], float(lifetime.get(key) or 0))
        for reason, count in sorted((lifetime.get("rejected_by_reason") or {}).items()):
            rejected.add_metric([name, reason], float(count))
    yield from (connected, stopped_gauge, lag, pending, age, queue_up, *counters.values(),
                rejected)
