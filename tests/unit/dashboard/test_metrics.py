"""/metrics: totals written with the events, exposed in Prometheus' format, parsed back
with prometheus_client's own parser; label caps; the access policy."""
from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.event_factory import T0, lifecycle, task
from helpers.factories import set_collector_status
from lookout.collectors.buffer import EventBuffer
from lookout.collectors.stats import CollectorStats
from lookout.collectors.writer import HistoryWriter
from lookout.core.config import Settings
from lookout.core.store import db


def write(engine, events, **caps):
    settings = Settings(retention=0, max_tasks=0, rollup_retention=0, **caps)
    HistoryWriter(engine, EventBuffer(), settings, CollectorStats()).write_batch(events)


def scrape(client, **headers) -> dict[str, dict]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.content_type.startswith("text/plain; version=0.0.4")
    samples: dict[str, dict] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def labels(**values) -> tuple:
    return tuple(sorted(values.items()))


def test_counters_and_histograms_follow_the_events(database_url, make_app):
    engine = db.make_engine(database_url)
    events = lifecycle("a1", T0, runtime=0.2) + lifecycle("a2", T0 + 1, runtime=3.0)
    events += lifecycle("a3", T0 + 1.5, runtime=70.0)  # a long task, past the default 10 s
    events += [task("task-received", "f1", T0 + 2, name="proj.fail", args="()",
                    kwargs="{}", retries=0),
               task("task-failed", "f1", T0 + 3, exception="KeyError('x')", traceback="tb")]
    write(engine, events)
    write(engine, lifecycle("a1", T0, runtime=0.2))  # the same events again: not counted
    engine.dispose()
    samples = scrape(make_app(database_url).test_client())
    add = labels(name="proj.add", hostname="w1@host", queue_name="celery")
    assert samples["celery_task_succeeded_total"] == {add: 3.0}
    assert samples["celery_task_sent_total"] == {
        labels(name="proj.add", hostname="client@web", queue_name="celery"): 3.0}
    assert samples["celery_task_failed_total"] == {labels(
        name="proj.fail", hostname="w1@host", queue_name="", exception="KeyError"): 1.0}
    runtime = samples["celery_task_runtime_bucket"]
    assert runtime[tuple(sorted((*add, ("le", "0.25"))))] == 1.0
    assert runtime[tuple(sorted((*add, ("le", "5.0"))))] == 2.0
    # Buckets go on to an hour: a p95 over a minute can be told (a rule's threshold).
    assert runtime[tuple(sorted((*add, ("le", "60.0"))))] == 2.0
    assert runtime[tuple(sorted((*add, ("le", "120.0"))))] == 3.0
    assert runtime[tuple(sorted((*add, ("le", "3600.0"))))] == 3.0
    assert runtime[tuple(sorted((*add, ("le", "+Inf"))))] == 3.0
    assert samples["celery_task_runtime_sum"][add] == pytest.approx(73.2)
    assert samples["celery_task_queue_wait_time_count"][add] == 3.0
    # Flower's histogram keeps Flower's (prometheus_client's default) buckets.
    flower_bounds = {dict(k)["le"] for k in samples["flower_task_runtime_seconds_bucket"]}
    assert "60.0" not in flower_bounds and {"10.0", "+Inf"} <= flower_bounds
    flower = samples["flower_events_total"]
    assert flower[labels(worker="w1@host", type="task-succeeded", task="proj.add")] == 3.0
    assert samples["flower_task_runtime_seconds_count"][
        labels(worker="w1@host", task="proj.add")] == 3.0
    # families with no sample yet are still declared
    assert "celery_task_rejected_total" not in samples
    text = make_app(database_url).test_client().get("/metrics").get_data(as_text=True)
    assert "# TYPE celery_task_rejected_total counter" in text


def test_label_values_are_capped(sqlite_url, make_app):
    engine = db.make_engine(sqlite_url)
    events = []
    for i in range(5):
        events += lifecycle(f"t{i}", T0 + i, name=f"proj.generated_{i}")
    write(engine, events, metrics_max_task_names=3)
    write(engine, lifecycle("late", T0 + 9, name="proj.generated_0"),
          metrics_max_task_names=3)  # admitted before: keeps its own series
    engine.dispose()
    succeeded = scrape(make_app(sqlite_url).test_client())["celery_task_succeeded_total"]
    names = {dict(k)["name"]: v for k, v in succeeded.items()}
    assert len(names) == 4 and names["other"] == 2.0 and names["proj.generated_0"] == 2.0


def test_collector_and_worker_gauges(sqlite_url, make_app):
    from lookout.collectors.status import StatusReporter

    engine = db.make_engine(sqlite_url)
    settings = Settings(database_url=sqlite_url, collector_name="c1")
    stats = CollectorStats(received=7, stored=6)
    stats.reject("bad-json")
    StatusReporter(engine, settings, stats, EventBuffer()).write()
    # a restarted collector continues its lifetime totals
    again = CollectorStats(received=2)
    reporter = StatusReporter(engine, settings, again, EventBuffer())
    reporter.carry_over()
    reporter.write()
    engine.dispose()
    samples = scrape(make_app(sqlite_url).test_client())
    assert samples["lookout_collector_events_received_total"] == {labels(collector="c1"): 9.0}
    assert samples["lookout_collector_events_rejected_total"] == {
        labels(collector="c1", reason="bad-json"): 1.0}
    assert samples["lookout_collector_connected"] == {labels(collector="c1"): 0.0}


def test_a_killed_collectors_last_connected_row_scrapes_as_not_connected(sqlite_url,
                                                                          make_app):
    """SIGKILL leaves a row that says connected; the gauge follows /healthz's staleness."""
    app = make_app(sqlite_url)
    engine = app.extensions["lookout.engine"]
    set_collector_status(engine, "alive")
    set_collector_status(engine, "killed", updated_at=time.time() - 60)
    samples = scrape(app.test_client())
    assert samples["lookout_collector_connected"] == {labels(collector="alive"): 1.0,
                                                      labels(collector="killed"): 0.0}


def test_a_collector_stopped_on_request_is_marked_so_and_the_shipped_rules_skip_it(
        sqlite_url, make_app):
    """A rolling restart or a retired collector leaves a row that is not connected and
    ages: the shipped rules paged "critical" for it until `collectors forget` (a trial).
    The stopped gauge follows /healthz's reading, and both collector rules exclude it."""
    from pathlib import Path

    import yaml

    app = make_app(sqlite_url)
    engine = app.extensions["lookout.engine"]
    set_collector_status(engine, "running")
    set_collector_status(engine, "retired", connected=False, updated_at=time.time() - 600,
                         stats={"stopped": True})
    set_collector_status(engine, "killed", updated_at=time.time() - 600)
    samples = scrape(app.test_client())
    assert samples["lookout_collector_stopped"] == {labels(collector="running"): 0.0,
                                                    labels(collector="retired"): 1.0,
                                                    labels(collector="killed"): 0.0}
    assert samples["lookout_collector_connected"][labels(collector="retired")] == 0.0
    docs = Path(__file__).resolve().parents[3] / "docs" / "monitoring"
    rules = {r["alert"]: r["expr"] for g in yaml.safe_load(
        (docs / "prometheus-alerts.yml").read_text())["groups"] for r in g["rules"]}
    for alert in ("LookoutCollectorDisconnected", "LookoutCollectorStalled"):
        assert "unless on(collector) lookout_collector_stopped == 1" in rules[alert], alert


def test_the_message_queue_gauge_follows_each_collectors_own_check(sqlite_url, make_app):
    """Present for collectors that push through a message queue, while their row is fresh."""
    app = make_app(sqlite_url)
    engine = app.extensions["lookout.engine"]
    set_collector_status(engine, "reaches", stats={"live": {"ok": True, "subscribers": 2}})
    set_collector_status(engine, "cut-off", stats={"live": {"ok": False, "error": "x"}})
    set_collector_status(engine, "in-process")  # `lookout run`: no queue, no series
    set_collector_status(engine, "killed", updated_at=time.time() - 60,
                         stats={"live": {"ok": True}})
    samples = scrape(app.test_client())
    assert samples["lookout_collector_message_queue_up"] == {
        labels(collector="reaches"): 1.0, labels(collector="cut-off"): 0.0}


def test_access_policy(sqlite_url, make_app):
    local = make_app(sqlite_url, auth=True)
    client = local.test_client()
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 401 and "Bearer" in proxied.get_json()["error"]["message"]
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert remote.status_code == 401
    strict = make_app(sqlite_url, auth=True, metrics_access="auth").test_client()
    assert strict.get("/metrics").status_code == 401
    assert strict.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    accounts = local.extensions["lookout.accounts"]
    _, secret = accounts.add_token("prom", "viewer", created_by="test")
    assert strict.get("/metrics", headers={"Authorization": f"Bearer {secret}"}).status_code \
        == 200
    opened = make_app(sqlite_url, auth=True, metrics_access="open").test_client()
    assert opened.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code \
        == 200


def test_shipped_dashboard_and_alert_rules_use_only_exposed_metrics(sqlite_url, make_app):
    import json
    import re
    from pathlib import Path

    import yaml

    docs = Path(__file__).resolve().parents[3] / "docs" / "monitoring"
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    rules = yaml.safe_load((docs / "prometheus-alerts.yml").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in re.findall(r"\b(?:celery|flower|lookout)_\w+", e)}
    assert len(used) >= 15
    text = make_app(sqlite_url).test_client().get("/metrics").get_data(as_text=True)
    exposed = set()
    for family in text_string_to_metric_families(text):
        exposed.add(family.name)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        exposed.update(family.name + s for s in suffixes.get(family.type, ()))
    assert used <= exposed, sorted(used - exposed)


def test_a_stale_queue_sample_is_left_out(sqlite_url, make_app):
    """A depth sampled before the broker went away must not read as today's depth."""
    from lookout.core.store.models import QueueSample

    app = make_app(sqlite_url)
    engine = app.extensions["lookout.engine"]
    now = time.time()
    with engine.begin() as conn:
        conn.execute(QueueSample.__table__.insert(), [
            {"queue": "fresh", "timestamp": now - 5, "messages": 3, "consumers": 1},
            {"queue": "stale", "timestamp": now - 600, "messages": 7, "consumers": 1}])
    samples = scrape(app.test_client())
    assert samples["celery_queue_length"] == {labels(queue_name="fresh"): 3.0}


def test_a_collector_outage_does_not_turn_the_fleet_offline_for_flower_outputs(sqlite_url,
                                                                               make_app):
    """With no collector listening, a worker's silence means nothing ("unknown" on the
    Workers page). Flower's yes/no outputs keep what was last known, online, instead of
    reporting every worker down on each collector restart (seen in a trial); a worker
    silent while a collector listened is down, and one that said goodbye is offline.
    One silent for longer than lost_after (60 s) was offline before the collector went
    away: it does not come back up (a trial saw a dead worker's gauge go back to 1 at
    every collector restart)."""
    from helpers.factories import add_worker

    app = make_app(sqlite_url)
    engine = app.extensions["lookout.engine"]
    now = time.time()
    add_worker(engine, "quiet@h", last_heartbeat=now - 30)  # silent, but nobody listened
    add_worker(engine, "dead@h", last_heartbeat=now - 300)  # silent since long before
    add_worker(engine, "gone@h", online=False, last_heartbeat=now - 60)
    client = app.test_client()
    samples = scrape(client)
    assert samples["flower_worker_online"] == {labels(worker="quiet@h"): 1.0,
                                               labels(worker="dead@h"): 0.0,
                                               labels(worker="gone@h"): 0.0}
    assert samples["celery_worker_up"] == {labels(hostname="quiet@h"): 1.0,
                                           labels(hostname="dead@h"): 0.0,
                                           labels(hostname="gone@h"): 0.0}
    assert client.get("/api/workers?status=1").get_json() == {
        "quiet@h": True, "dead@h": False, "gone@h": False}
    # Said goodbye (worker-offline): stopped, which the shipped WorkerDown rule leaves out.
    assert samples["lookout_worker_stopped"] == {labels(hostname="quiet@h"): 0.0,
                                                 labels(hostname="dead@h"): 0.0,
                                                 labels(hostname="gone@h"): 1.0}
    # A collector has been listening for ten minutes: now its silence counts.
    set_collector_status(engine, "c1", connected_since=now - 600)
    samples = scrape(client)
    assert samples["flower_worker_online"][labels(worker="quiet@h")] == 0.0
    assert samples["celery_worker_up"][labels(hostname="quiet@h")] == 0.0
    assert client.get("/api/workers?status=1").get_json()["quiet@h"] is False


def test_workers_offline_for_a_day_leave_the_worker_gauges(sqlite_url, make_app):
    """A fleet whose hostnames change with every deploy kept each retired worker at
    celery_worker_up 0 for the week of worker_retention (a trial). Offline for longer
    than metrics_offline_workers_kept (1 day), a worker leaves /metrics' worker gauges;
    the Workers page still lists it."""
    from helpers.factories import add_worker

    app = make_app(sqlite_url, metrics_offline_workers_kept=3600)
    engine = app.extensions["lookout.engine"]
    now = time.time()
    set_collector_status(engine, "c1", connected_since=now - 7200)
    add_worker(engine, "retired-old@h", online=False, last_heartbeat=now - 3700)
    add_worker(engine, "retired-new@h", online=False, last_heartbeat=now - 600)
    add_worker(engine, "killed-old@h", last_heartbeat=now - 3700)  # offline by silence
    add_worker(engine, "alive@h", last_heartbeat=now - 1)
    client = app.test_client()
    samples = scrape(client)
    for gauge in ("celery_worker_up", "lookout_worker_stopped"):
        assert set(samples[gauge]) == {labels(hostname="retired-new@h"),
                                       labels(hostname="alive@h")}, gauge
    listed = {w["hostname"] for w in client.get("/api/v1/workers").get_json()["items"]}
    assert {"retired-old@h", "killed-old@h"} <= listed


def test_retired_hostnames_give_their_place_once_unseen_for_a_day(database_url, make_app):
    """A fleet whose hostnames change with every deploy filled the hostname cap with
    retired workers, and every new worker counted as "other" for good (a trial). With the
    cap full, a value unseen for a day gives its place, and its series go with it."""
    from lookout.collectors.label_caps import EVICT_AFTER, SEEN_EVERY

    engine = db.make_engine(database_url)
    now = [T0]
    settings = Settings(retention=0, max_tasks=0, rollup_retention=0,
                        metrics_max_hostnames=3)
    writer = HistoryWriter(engine, EventBuffer(), settings, CollectorStats())
    writer.label_caps.clock = lambda: now[0]
    # client@web (task-sent) and two workers fill the cap of 3.
    writer.write_batch(lifecycle("a", T0, hostname="pod-1@h") +
                       lifecycle("b", T0 + 1, hostname="pod-2@h"))
    now[0] += SEEN_EVERY  # pod-2 and the client still work; pod-1 has been retired
    writer.write_batch(lifecycle("c", T0 + 2, hostname="pod-2@h"))
    now[0] += EVICT_AFTER - SEEN_EVERY / 2  # pod-1 unseen for over a day, the rest not
    writer.write_batch(lifecycle("d", T0 + 3, hostname="pod-3@h"))
    writer.label_caps.forget()  # as a restarted collector: what the store says counts
    now[0] += 60
    writer.write_batch(lifecycle("e", T0 + 4, hostname="pod-4@h"))  # nobody unseen a day
    engine.dispose()
    succeeded = scrape(make_app(database_url).test_client())["celery_task_succeeded_total"]
    hosts = {dict(k)["hostname"]: v for k, v in succeeded.items()}
    assert hosts == {"pod-2@h": 2.0, "pod-3@h": 1.0, "other": 1.0}  # pod-1's series gone
