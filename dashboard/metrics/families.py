"""What each exposed series means, and how stored totals become metric families.

Counters and histograms come from `metric_totals`, which the collector adds to as it
stores events (collectors/metrics_writer.py); histograms are stored per bucket and
made cumulative here, as the exposition format wants.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from lookout.collectors.metrics_writer import BUCKETS_OF, le_labels

HELP = {
    "celery_task_sent_total": "Tasks sent (task-sent events; clients need "
                              "task_send_sent_event)",
    "celery_task_received_total": "Tasks received by a worker",
    "celery_task_started_total": "Tasks started by a worker",
    "celery_task_succeeded_total": "Tasks that succeeded",
    "celery_task_failed_total": "Tasks that failed, by exception type",
    "celery_task_rejected_total": "Tasks rejected by a worker",
    "celery_task_revoked_total": "Tasks revoked",
    "celery_task_retried_total": "Task retries",
    "flower_events_total": "Task events (Flower's metric)",
    "celery_task_runtime": "Task runtime in seconds (task-succeeded)",
    "celery_task_queue_wait_time": "Seconds from received (or its ETA, if later) to started",
    "flower_task_runtime_seconds": "Task runtime (Flower's metric)",
}
TASK_LABELS = ["hostname", "name", "queue_name"]
# Every family is exposed, even before its first sample, so dashboards and alert rules
# find their series' metadata from the first scrape.
LABELS = {
    **{metric: TASK_LABELS for metric in HELP if metric.startswith("celery_task_")},
    "celery_task_failed_total": ["exception", *TASK_LABELS],
    "flower_events_total": ["task", "type", "worker"],
    "flower_task_runtime_seconds": ["task", "worker"],
}
HISTOGRAMS = ("celery_task_runtime", "celery_task_queue_wait_time",
              "flower_task_runtime_seconds")


def families(rows: Iterable[tuple[str, str, float]]) -> Iterator:
    """Counter and histogram families from (metric, labels JSON, value) rows."""
    counters: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    buckets: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    sums: dict[tuple[str, str], float] = {}
    for metric, labels_text, value in rows:
        base = next((h for h in HISTOGRAMS if metric.startswith(h + "_")), None)
        if base is None:
            counters[metric].append((json.loads(labels_text), value))
            continue
        labels = json.loads(labels_text)
        le = labels.pop("le", None)
        key = (base, json.dumps(labels, sort_keys=True))
        if metric.endswith("_bucket") and le is not None:
            buckets[key][le] = buckets[key].get(le, 0.0) + value
        elif metric.endswith("_sum"):
            sums[key] = value
    for metric in sorted(set(counters) | {m for m in LABELS if m.endswith("_total")}):
        samples = counters.get(metric, [])
        names = LABELS.get(metric) or sorted({k for labels, _ in samples for k in labels})
        family = CounterMetricFamily(metric, HELP.get(metric, metric), labels=names)
        for labels, value in samples:
            family.add_metric([labels.get(n, "") for n in names], value)
        yield family
    by_base: dict[str, list] = defaultdict(list)
    for (base, labels_text), counts in buckets.items():
        by_base[base].append((json.loads(labels_text), counts, sums.get((base, labels_text),
                                                                       0.0)))
    for base in HISTOGRAMS:
        bounds = le_labels(BUCKETS_OF[base])
        series = by_base.get(base, [])
        names = LABELS[base]
        family = HistogramMetricFamily(base, HELP.get(base, base), labels=names)
        for labels, counts, total in series:
            cumulative, running = [], 0.0
            for le in bounds:
                running += counts.get(le, 0.0)
                cumulative.append((le, running))
            family.add_metric([labels.get(n, "") for n in names], cumulative, total)
        yield family
