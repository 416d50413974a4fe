"""Workers, stats from rollups and /healthz, on real SQLite and PostgreSQL stores."""
from __future__ import annotations

import pytest

from helpers.factories import (
    add_rollup,
    add_task,
    add_tasks,
    add_worker,
    minute,
    set_collector_status,
)
from lookout.core import histogram

NOW = 1_800_000_000.0  # a minute boundary: the frozen "now" of these tests


@pytest.fixture
def app(make_app, database_url):
    # A frozen clock judges liveness, windows and staleness.
    return make_app(database_url, clock=lambda: NOW)


# -- workers ---------------------------------------------------------------------------
def test_worker_status_is_judged_from_receive_time_and_freq(client, engine):
    set_collector_status(engine, updated_at=NOW, connected_since=NOW - 600)  # listening
    add_worker(engine, "w-fresh", last_heartbeat=NOW - 1)
    add_worker(engine, "w-grace", freq=5.0, last_heartbeat=NOW - 11)  # 2*5 + 2 s grace
    add_worker(engine, "w-late", freq=5.0, last_heartbeat=NOW - 13)
    add_worker(engine, "w-gone", online=False, last_heartbeat=NOW - 1)
    items = client.get("/api/v1/workers").get_json()["items"]
    status = {w["hostname"]: w["status"] for w in items}
    assert status == {"w-fresh": "online", "w-grace": "online",
                      "w-late": "heartbeat-missed", "w-gone": "offline"}
    ages = {w["hostname"]: w["heartbeat_age"] for w in items}
    assert ages["w-late"] == 13.0 and ages["w-fresh"] == 1.0
    assert items[0]["loadavg"] == [0.1, 0.2, 0.3]


def test_a_worker_silent_for_lost_after_is_offline_though_it_never_said_goodbye(
        client, engine):
    """A SIGKILLed worker sends no worker-offline: it stayed "heartbeat missed" and
    "online" for good (seen in a trial). Silent past `lost_after` (60 s, when its open tasks
    turn lost) while a collector listened, it is offline, and says why; it runs nothing."""
    set_collector_status(engine, updated_at=NOW, connected_since=NOW - 600)
    add_worker(engine, "w-missed", last_heartbeat=NOW - 59, active=2)
    add_worker(engine, "w-killed", last_heartbeat=NOW - 61, active=2)
    workers = {w["hostname"]: w for w in client.get("/api/v1/workers").get_json()["items"]}
    assert workers["w-missed"]["status"] == "heartbeat-missed"
    assert workers["w-missed"]["status_reason"] == "no heartbeat for 59 s (expected every 2 s)"
    assert workers["w-killed"]["status"] == "offline"
    assert workers["w-killed"]["status_reason"] == "no heartbeat for 61 s (offline after 60 s)"
    offline = client.get("/api/v1/workers?status=offline").get_json()["items"]
    assert [w["hostname"] for w in offline] == ["w-killed"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'celery_worker_up{hostname="w-killed"} 0.0' in metrics
    assert 'celery_worker_tasks_active{hostname="w-killed"} 0.0' in metrics
    assert 'celery_worker_tasks_active{hostname="w-missed"} 2.0' in metrics


@pytest.mark.parametrize("collector", [
    None, {"updated_at": NOW - 60, "connected_since": NOW - 600},  # none; killed
    {"updated_at": NOW, "connected_since": NOW - 3},  # reconnected 3 s ago
], ids=["none", "stale", "just-reconnected"])
def test_a_missed_heartbeat_nobody_listened_for_is_unknown(client, engine, collector):
    """With no collector hearing the broker every worker looks silent: on-call would
    restart healthy workers. Goodbyes and fresh heartbeats still count."""
    if collector is not None:
        set_collector_status(engine, **collector)
    add_worker(engine, "w-late", freq=2.0, last_heartbeat=NOW - 30)
    add_worker(engine, "w-fresh", last_heartbeat=NOW - 1)
    add_worker(engine, "w-gone", online=False, last_heartbeat=NOW - 30)
    items = client.get("/api/v1/workers").get_json()["items"]
    assert {w["hostname"]: w["status"] for w in items} == {
        "w-late": "unknown", "w-fresh": "online", "w-gone": "offline"}
    unknown = client.get("/api/v1/workers?status=unknown").get_json()["items"]
    assert [w["hostname"] for w in unknown] == ["w-late"]


def test_worker_detail_has_its_recent_tasks_and_counts_by_state(client, engine):
    add_worker(engine, "celery@a", last_heartbeat=NOW)
    mine = add_tasks(engine, 25, worker="celery@a", state="SUCCESS")
    add_tasks(engine, 3, worker="celery@a", state="FAILURE", start=mine[0]["timestamp"] - 100)
    add_tasks(engine, 4, worker="celery@b", state="FAILURE")
    body = client.get("/api/v1/workers/celery@a").get_json()
    assert body["status"] == "online" and body["hostname"] == "celery@a"
    assert body["task_counts"] == {"SUCCESS": 25, "FAILURE": 3}
    assert [t["uuid"] for t in body["recent_tasks"]] == [t["uuid"] for t in mine[::-1][:20]]


def test_unknown_worker_is_404_json(client):
    response = client.get("/api/v1/workers/celery@nowhere")
    assert response.status_code == 404 and response.get_json()["error"]["status"] == 404


# -- stats -----------------------------------------------------------------------------
@pytest.fixture
def rollups(engine):
    """Two names in the last hour, one row outside it that must not count."""
    add_rollup(engine, "proj.add", minute(NOW - 50 * 60), received=10, succeeded=8, failed=2,
               runtimes=[0.1] * 8)
    add_rollup(engine, "proj.add", minute(NOW - 60), received=5, succeeded=3, retried=1,
               runtimes=[0.1, 0.2, 2.0])
    add_rollup(engine, "proj.mul", minute(NOW - 60), received=4, failed=4)
    add_rollup(engine, "proj.add", minute(NOW - 3 * 3600), received=99, failed=99,
               runtimes=[50.0] * 9)


def test_stats_per_name_counts_rates_and_percentiles(client, rollups):
    body = client.get("/api/v1/stats?window=1h").get_json()
    by_name = {t["name"]: t for t in body["tasks"]}
    assert set(by_name) == {"proj.add", "proj.mul"}
    add = by_name["proj.add"]
    assert add["counts"] == {"received": 15, "started": 0, "succeeded": 11, "failed": 2,
                             "retried": 1, "revoked": 0, "rejected": 0}
    assert add["failure_rate"] == pytest.approx(2 / 13, abs=1e-6)
    assert add["runtime_count"] == 11
    assert add["runtime_mean"] == pytest.approx((0.1 * 9 + 0.2 + 2.0) / 11, abs=1e-6)
    expected = {}
    for r in [0.1] * 9 + [0.2, 2.0]:
        histogram.add(expected, r)
    want = histogram.percentiles(expected, (50, 95, 99))
    assert (add["runtime_p50"], add["runtime_p95"], add["runtime_p99"]) == \
        (want[50], want[95], want[99])
    assert add["runtime_p99"] == pytest.approx(2.0, rel=0.1)  # 50 s outlier is out of window
    mul = by_name["proj.mul"]
    assert mul["failure_rate"] == 1.0 and mul["runtime_p50"] is None
    assert body["totals"]["counts"]["failed"] == 6 and body["totals"]["counts"]["received"] == 19
    assert body["totals"]["failure_rate"] == pytest.approx(6 / 17, abs=1e-6)


def test_stats_series_has_one_point_per_step_and_zero_fills(client, rollups):
    body = client.get("/api/v1/stats?window=1h").get_json()
    assert body["step"] == 60
    series = body["series"]
    assert [p["t"] for p in series] == list(range(int(NOW - 3600), int(NOW) + 1, 60))
    by_t = {p["t"]: p for p in series}
    assert by_t[minute(NOW - 60)] == {"t": minute(NOW - 60), "received": 9, "succeeded": 3,
                                      "failed": 4, "retried": 1}
    assert by_t[minute(NOW - 50 * 60)]["failed"] == 2
    assert sum(p["received"] for p in series) == 19


@pytest.mark.parametrize("window, step", [("5m", 60), ("24h", 900), ("7d", 3600)])
def test_stats_bucket_size_follows_the_window(client, rollups, window, step):
    body = client.get(f"/api/v1/stats?window={window}").get_json()
    assert body["step"] == step
    assert sum(p["failed"] for p in body["series"]) == body["totals"]["counts"]["failed"]
    assert len(body["series"]) <= 201


def test_stats_with_no_rollups_is_empty_not_an_error(client):
    body = client.get("/api/v1/stats").get_json()
    assert body["tasks"] == [] and body["totals"]["failure_rate"] is None
    assert body["window"] == 3600


@pytest.mark.parametrize("query, parameter", [
    ("window=abc", "window"), ("window=5", "window"), ("window=0m", "window"),
    ("window=1000d", "window"), ("window=1h;DROP TABLE task_rollups", "window"),
    ("span=1h", "span"),
])
def test_stats_bad_parameters_are_400(client, query, parameter):
    response = client.get(f"/api/v1/stats?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["parameter"] == parameter


# -- healthz ---------------------------------------------------------------------------
def test_healthz_ok_with_a_fresh_connected_collector(client, engine):
    set_collector_status(engine, updated_at=NOW - 1, started_at=NOW - 100,
                         last_event_at=NOW - 2.5,
                         stats={"received": 500, "rejected": 3, "dropped": 0,
                                "write_lag": 0.12, "events_per_sec": 42.0,
                                "buffer_pending": 7, "stored": 502, "reconciled": 2})
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["healthy"] and body["status"] == "ok" and body["database"] == {"ok": True}
    (collector,) = body["collectors"]
    assert collector["up"] and collector["connected"] and not collector["stale"]
    assert collector["last_event_age"] == 2.5 and collector["status_age"] == 1.0
    assert (collector["rejected"], collector["dropped"], collector["write_lag"]) == (3, 0, 0.12)
    assert collector["events_per_second"] == 42.0 and collector["buffer_pending"] == 7
    assert collector["events_per_second_avg"] == pytest.approx(500 / 99, abs=1e-3)
    # More stored than received: the two the result backend supplied say why.
    assert (collector["stored"], collector["reconciled"]) == (502, 2)


def test_healthz_warns_when_a_connected_collector_hears_no_worker(client, engine):
    """Connected for minutes without one event: the wrong broker, or workers without -E."""
    set_collector_status(engine, updated_at=NOW, connected_since=NOW - 600,
                         last_event_at=None)
    set_collector_status(engine, name="heard-long-ago", updated_at=NOW,
                         connected_since=NOW - 3600, last_event_at=NOW - 181)
    response = client.get("/healthz")
    assert response.status_code == 200  # a warning, not an outage
    body = response.get_json()
    assert body["healthy"] and body["status"] == "warning" and body["problems"] == []
    never_heard, heard_long_ago = sorted(body["warnings"], key=lambda w: "default" not in w)
    assert never_heard.startswith("collector default: ")
    assert "no worker has been heard for 10 minutes" in never_heard
    assert "heard for 3 minutes: wrong broker, or workers without events?" in heard_long_ago


@pytest.mark.parametrize("stats, warning", [
    ({"dropped": 12, "buffer_spilled": 900}, "12 events lost since this collector started"),
    ({"dropped": 0, "buffer_spilled": 900}, "900 events waiting in the spill file"),
])
def test_healthz_says_so_when_events_were_lost_or_wait_on_disk(client, engine, stats, warning):
    set_collector_status(engine, updated_at=NOW, last_event_at=NOW - 1, stats=stats)
    body = client.get("/healthz").get_json()
    assert body["status"] == "warning" and body["healthy"]
    assert warning in body["warnings"][0]
    assert body["collectors"][0]["buffer_spilled"] == 900


@pytest.mark.parametrize("fields", [
    {"connected_since": NOW - 100, "last_event_at": None},  # just connected: give it time
    {"connected_since": NOW - 3600, "last_event_at": NOW - 179},  # heard within 3 minutes
])
def test_healthz_does_not_warn_too_early(client, engine, fields):
    set_collector_status(engine, updated_at=NOW, **fields)
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["warnings"] == []
    assert body["collectors"][0]["warning"] is None


def test_healthz_stale_status_row_means_down_even_if_it_says_connected(client, engine):
    set_collector_status(engine, connected=True, updated_at=NOW - 11,
                         stats={"events_per_sec": 85.45})
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert not body["healthy"] and body["collectors"][0]["stale"]
    assert not body["collectors"][0]["connected"]
    assert "not updated for 11s" in body["problems"][0]
    assert body["collectors"][0]["events_per_second"] is None  # its last rate is not now


def test_healthz_disconnected_collector_reports_since_when(client, engine):
    set_collector_status(engine, connected=False, updated_at=NOW, disconnected_since=NOW - 90)
    set_collector_status(engine, name="second", updated_at=NOW)
    response = client.get("/healthz")
    assert response.status_code == 503
    by_name = {c["name"]: c for c in response.get_json()["collectors"]}
    assert by_name["default"]["disconnected_for"] == 90.0
    assert by_name["default"]["problem"] == "disconnected from broker"
    assert by_name["second"]["up"]
    # The broker's refusal, where there is one (it answered, and refused the queue).
    set_collector_status(engine, connected=False, updated_at=NOW, disconnected_since=NOW - 90,
                         stats={"last_error": "PreconditionFailed: inequivalent arg "
                                              "'x-expires' for queue 'lookout.events'"})
    by_name = {c["name"]: c for c in client.get("/healthz").get_json()["collectors"]}
    assert by_name["default"]["problem"] == (
        "disconnected from broker: PreconditionFailed: inequivalent arg 'x-expires' for "
        "queue 'lookout.events'")


def test_healthz_lists_a_collector_stopped_on_request_as_stopped_not_down(client, engine):
    """Its last row said `stopped` (SIGTERM, Ctrl-C): no problem while another runs; if
    none runs, that is the problem."""
    set_collector_status(engine, connected=False, updated_at=NOW - 300,
                         stats={"stopped": True})
    set_collector_status(engine, name="second", updated_at=NOW)
    response = client.get("/healthz")
    assert response.status_code == 200, response.get_json()
    by_name = {c["name"]: c for c in response.get_json()["collectors"]}
    assert (by_name["default"]["stopped"], by_name["default"]["up"],
            by_name["default"]["problem"]) == (True, False, None)
    assert by_name["second"]["up"] and not by_name["second"]["stopped"]
    set_collector_status(engine, name="second", connected=False, updated_at=NOW - 1,
                         stats={"stopped": True})  # stopped at once, not stale first
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["problems"] == ["no collector is running (every one was stopped)"]
    # A row that stopped updating without saying so is down, as before.
    set_collector_status(engine, name="second", updated_at=NOW - 20)
    assert client.get("/healthz").get_json()["problems"] == [
        "collector second: status not updated for 20s (killed, hung, or cut off from the "
        "store; one that will not come back: lookout collectors forget second)"]


def test_healthz_without_any_collector_is_503(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["problems"] == ["no collector has reported yet"]


def test_healthz_unreachable_database_is_503_json(make_app):
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/lookout_no_such_database"
    response = make_app(url).test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"]["ok"] is False and body["status"] == "down"


def test_unknown_api_route_is_json_404(client, engine):
    add_task(engine)
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.get_json()["error"]["status"] == 404


def test_stats_are_cached_per_window(app, client, engine):
    cache = app.extensions["lookout.history"].rollups.cache
    cache.ttl = 60.0  # fixed, so a slow machine cannot expire it mid-test
    add_rollup(engine, "proj.add", minute(NOW - 60), received=1)
    assert client.get("/api/v1/stats").get_json()["totals"]["counts"]["received"] == 1
    add_rollup(engine, "proj.add", minute(NOW - 120), received=5)
    assert client.get("/api/v1/stats").get_json()["totals"]["counts"]["received"] == 1
    assert client.get("/api/v1/stats?window=2h").get_json()["totals"]["counts"]["received"] == 6
    cache.clear()
    assert client.get("/api/v1/stats").get_json()["totals"]["counts"]["received"] == 6


def test_cost_cache_lifetimes_are_bounded():
    import time

    from lookout.dashboard.web.cost_cache import CostCache

    cache = CostCache(factor=200, minimum=2, maximum=60)
    for key, cost, lifetime in (("cheap", 0.001, 2), ("mid", 0.1, 20), ("dear", 5.0, 60)):
        cache.put(key, key, cost)
        expiry = cache._entries[key][0] - time.monotonic()
        assert lifetime - 0.5 < expiry <= lifetime, key
    assert cache.get("mid") == (True, "mid") and cache.get("other") == (False, None)
    cache.ttl = 0
    cache.put("never", 1, 10.0)
    assert cache.get("never") == (False, None)


def test_workers_page_by_hostname_and_filter_by_status(make_app, sqlite_url):
    import time as clock

    from helpers.factories import add_worker

    app = make_app(sqlite_url)
    engine = app.extensions["lookout.engine"]
    now = clock.time()
    set_collector_status(engine, connected_since=now - 3600)  # listening all along
    for i in range(5):
        add_worker(engine, hostname=f"w{i}@h", last_heartbeat=now - (30 if i % 2 else 0),
                   online=True)
    client = app.test_client()
    first = client.get("/api/v1/workers?limit=2").get_json()
    assert [w["hostname"] for w in first["items"]] == ["w0@h", "w1@h"]
    assert first["total"] == 5 and first["next_cursor"] == "w1@h"
    rest = client.get(f"/api/v1/workers?limit=10&cursor={first['next_cursor']}").get_json()
    assert [w["hostname"] for w in rest["items"]] == ["w2@h", "w3@h", "w4@h"]
    assert rest["next_cursor"] is None
    missed = client.get("/api/v1/workers?status=heartbeat-missed").get_json()["items"]
    assert [w["hostname"] for w in missed] == ["w1@h", "w3@h"]
    for query, parameter in (("status=asleep", "status"), ("limit=0", "limit"),
                             ("colour=red", "colour")):
        response = client.get(f"/api/v1/workers?{query}")
        assert response.status_code == 400 and \
            response.get_json()["error"]["parameter"] == parameter


def test_workers_silent_past_their_retention_are_pruned(sqlite_url):
    import time as clock

    from helpers.factories import add_worker
    from lookout.collectors.retention import Pruner
    from lookout.core.config import Settings
    from lookout.core.store.db import make_engine

    engine = make_engine(sqlite_url)
    now = clock.time()
    add_worker(engine, hostname="gone@h", last_heartbeat=now - 8 * 86400, online=False)
    add_worker(engine, hostname="here@h", last_heartbeat=now)
    Pruner(engine, Settings(worker_retention=7 * 86400)).prune_step(now)
    with engine.connect() as conn:
        from sqlalchemy import select

        from lookout.core.store.models import Worker
        left = conn.execute(select(Worker.hostname)).scalars().all()
    engine.dispose()
    assert left == ["here@h"]


def test_healthz_names_the_collector_running_each_singleton_job(client, engine):
    """Collectors side by side: one holds each job's lease; /healthz says which."""
    from lookout.core.store.models import Lease

    set_collector_status(engine, updated_at=NOW, last_event_at=NOW - 1)
    with engine.begin() as conn:
        conn.execute(Lease.__table__.insert(), [
            {"name": "retention", "holder": "east@host-a:41:abc123", "expires_at": NOW + 20},
            {"name": "queues", "holder": "west@host-b:7:def456", "expires_at": NOW - 5}])
    jobs = client.get("/healthz").get_json()["jobs"]
    assert jobs == [
        {"job": "queues", "collector": "west", "holder": "west@host-b:7:def456",
         "held": False, "expires_in": -5.0},
        {"job": "retention", "collector": "east", "holder": "east@host-a:41:abc123",
         "held": True, "expires_in": 20.0}]
