"""/metrics against a real worker and `lookout run` (collector + web): the counters equal
the history, Flower's and celery-exporter's names agree, and a restart of collector and
web continues every counter instead of resetting it."""
from __future__ import annotations

import json
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from helpers.browser import running_lookout
from helpers.support import wait_for
from lookout.core.store.db import make_engine
from lookout.core.store.models import CollectorStatus

pytestmark = pytest.mark.slow


def scrape(url: str) -> dict[str, float]:
    """Sample name{labels} -> value, for the series this test looks at."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name + repr(sorted(s.labels.items()))] = s.value
    return out


def total(samples: dict[str, float], metric_name: str, /, **labels) -> float:
    """Sum of `metric_name` over the series whose labels include `labels`."""
    found = 0.0
    for key, value in samples.items():
        metric, _, rest = key.partition("[")
        if metric == metric_name and all(repr((k, v)) in rest for k, v in labels.items()):
            found += value
    return found


@pytest.fixture(scope="module")
def lookout(redis_broker, tmp_path_factory):
    with running_lookout(redis_broker, tmp_path_factory.mktemp("metrics")) as running:
        yield running


def said_stopped_in(database_url: str) -> None:
    """`lookout run` stopped by SIGTERM left a status row saying so (health: stopped)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            stats = [json.loads(s) for s in conn.execute(select(CollectorStatus.stats)).scalars()]
    finally:
        engine.dispose()
    assert stats and all(s.get("stopped") is True for s in stats), stats


def test_counters_equal_the_history_and_survive_restarts(lookout):
    def said_stopped():
        said_stopped_in(lookout.database_url)

    ids = [lookout.send("sample.add", i, i) for i in range(6)]
    failed = lookout.send("sample.fail", "for metrics")
    for task_id in ids:
        lookout.wait_state(task_id, "SUCCESS")
    lookout.wait_state(failed, "FAILURE")
    succeeded = lookout.api("/api/v1/tasks?name=sample.add&state=SUCCESS&limit=1")["total"]
    host = lookout.worker.hostname
    before = wait_for(lambda: (s := scrape(lookout.url)) and total(
        s, "celery_task_succeeded_total", name="sample.add") == succeeded and s, 20, 0.3,
        "the counter to match the history")
    assert total(before, "celery_task_succeeded_total", name="sample.add",
                 hostname=host, queue_name=lookout.worker.queue) == succeeded
    assert total(before, "celery_task_failed_total", name="sample.fail",
                 exception="ValueError") == 1
    assert total(before, "flower_events_total", worker=host, type="task-succeeded",
                 task="sample.add") == succeeded
    assert total(before, "celery_task_runtime_count", name="sample.add") == succeeded
    assert total(before, "flower_task_runtime_seconds_count", task="sample.add") == succeeded
    assert total(before, "celery_worker_up", hostname=host) == 1
    assert total(before, "flower_worker_online", worker=host) == 1
    # the collector's own counters come from its status row, rewritten every second
    received = wait_for(lambda: (n := total(scrape(lookout.url),
                                            "lookout_collector_events_received_total"))
                        >= 4 * len(ids) and n, 10, 0.2, "the collector's counters")

    lookout.restart_server(while_down=said_stopped)  # a new process, the same store
    after = scrape(lookout.url)
    assert total(after, "celery_task_succeeded_total", name="sample.add") == succeeded
    assert total(after, "lookout_collector_events_received_total") >= received
    more = lookout.send("sample.add", 9, 9)
    lookout.wait_state(more, "SUCCESS")
    wait_for(lambda: total(scrape(lookout.url), "celery_task_succeeded_total",
                           name="sample.add") == succeeded + 1, 20, 0.3, "the next count")
    # The status row is rewritten every second: the next one counts the new events.
    wait_for(lambda: total(scrape(lookout.url), "lookout_collector_events_received_total")
             > received, 10, 0.2, "the collector's counter to go on from where it was")


def test_a_hard_time_limit_counts_one_failure_with_its_real_exception(lookout):
    """Celery 5.7 sends task-failed twice for one hard time limit, both with the empty
    repr `ExceptionWithTraceback()`: one failure in the counters and the Overview's stats,
    both events in Flower's event count, and the exception the traceback names."""
    task_id = f"time-limit-{time.time_ns()}"
    lookout.client.send_task("sample.sleep", kwargs={"seconds": 30}, task_id=task_id,
                             queue=lookout.worker.queue, time_limit=1)
    task = lookout.wait_state(task_id, "FAILURE")
    events = wait_for(lambda: (s := scrape(lookout.url)) and total(
        s, "flower_events_total", type="task-failed", task="sample.sleep") == 2 and s,
        20, 0.3, "both task-failed events stored")
    assert [e["type"] for e in lookout.api(f"/api/v1/tasks/{task_id}")["timeline"]
            ].count("task-failed") == 2  # what Celery sent, kept in the timeline
    assert total(events, "celery_task_failed_total", name="sample.sleep") == 1
    assert total(events, "celery_task_failed_total", name="sample.sleep",
                 exception="TimeLimitExceeded") == 1
    task = lookout.api(f"/api/v1/tasks/{task_id}")
    assert task["exception"] == "TimeLimitExceeded(1,)"
    stats = lookout.api("/api/v1/stats?window=3h")
    [sleep] = [t for t in stats["tasks"] if t["name"] == "sample.sleep"]
    assert sleep["counts"]["failed"] == 1
    failures = lookout.api("/api/v1/failures?window=3h")
    assert "TimeLimitExceeded" in json.dumps(failures)
    assert "ExceptionWithTraceback" not in json.dumps(failures)
