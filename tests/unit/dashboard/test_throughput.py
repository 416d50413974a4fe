"""The Overview chart's past: the rates collectors pushed, from their status rows.

The collector side is the real LivePublisher and StatusReporter writing a real store;
the web side is /api/v1/throughput on SQLite and PostgreSQL.
"""
from __future__ import annotations

import json
from collections import Counter

import pytest
from sqlalchemy import select

from helpers.factories import set_collector_status
from lookout.collectors.buffer import EventBuffer
from lookout.collectors.live_rates import POINTS_KEPT, LiveRates
from lookout.collectors.push import LivePublisher
from lookout.collectors.stats import CollectorStats
from lookout.collectors.status import StatusReporter
from lookout.collectors.writer import BatchSummary
from lookout.core.config import Settings
from lookout.core.store import db
from lookout.core.store.models import CollectorStatus

NOW = 1_800_000_000.0  # on the half-second grid


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url, clock=lambda: NOW)


class Recorder:
    """An emitter that keeps what it was given (flask_socketio's emit signature)."""

    def __init__(self):
        self.sent = []

    def emit(self, event, data, to=None, namespace=None):
        self.sent.append((event, data))


def pushes(rates: list[tuple[float, float]], end: float = NOW) -> list[list[float]]:
    """A collector's live_points: one (finished/s, events/s) per half second up to `end`."""
    start = end - 0.5 * (len(rates) - 1)
    return [[start + 0.5 * i, tasks, events] for i, (tasks, events) in enumerate(rates)]


def test_the_publisher_keeps_its_last_minute_of_rates_and_names_itself():
    now = [1000.0]
    recorder = Recorder()
    publisher = LivePublisher(recorder, clock=lambda: now[0])
    publisher.source = "collector-a"
    for _ in range(POINTS_KEPT + 10):
        now[0] += 0.5
        publisher(BatchSummary(events=10, states=Counter({"SUCCESS": 2, "FAILURE": 1})))
        publisher.flush()
    points = publisher.rates.points()
    assert len(points) == POINTS_KEPT  # a minute, the oldest dropped
    assert points[-1] == (now[0], 6.0, 20.0)
    assert points[0][0] == now[0] - 0.5 * (POINTS_KEPT - 1)
    overview = [data for event, data in recorder.sent if event == "overview"]
    assert overview[-1]["collector"] == "collector-a"
    assert overview[-1]["tasks_per_second"] == 6.0


def test_a_gated_publisher_keeps_no_points():
    """Of a Redis pair only the live lease's holder pushes; the other's points would
    count every event twice in the chart's past."""
    publisher = LivePublisher(Recorder())
    publisher.gate = lambda: False
    publisher(BatchSummary(events=10, states=Counter({"SUCCESS": 2})))
    publisher.flush()
    assert publisher.rates.points() == []


def test_the_status_row_carries_the_pushed_rates(sqlite_url):
    engine = db.make_engine(sqlite_url)
    stats = CollectorStats()
    rates = stats.live_rates = LiveRates()
    rates.tick(100.0, 0.5, 40, 10)
    rates.tick(100.5, 0.5, 40, 10)
    StatusReporter(engine, Settings(database_url=sqlite_url), stats, EventBuffer()).write()
    with engine.connect() as conn:
        text = conn.execute(select(CollectorStatus.stats)).scalar()
    assert json.loads(text)["live_points"] == [[100.0, 20.0, 80.0], [100.5, 20.0, 80.0]]
    engine.dispose()


def test_a_restarted_collector_keeps_its_last_minute_of_rates(sqlite_url):
    """A restart rewrote the status row with no points: the chart's last minute lost
    this collector's share and drew half the real rate (a trial)."""
    engine = db.make_engine(sqlite_url)
    settings = Settings(database_url=sqlite_url, collector_name="mq-a")
    try:
        before = CollectorStats()
        before.live_rates = LiveRates()
        before.live_rates.tick(100.0, 0.5, 40, 10)
        before.live_rates.tick(100.5, 0.5, 40, 10)
        StatusReporter(engine, settings, before, EventBuffer()).write()
        after = CollectorStats()
        rates = after.live_rates = LiveRates()
        rates.tick(130.0, 0.5, 10, 5)  # the restarted process's first push
        assert StatusReporter(engine, settings, after, EventBuffer()).carry_over()
        assert rates.points() == [(100.0, 20.0, 80.0), (100.5, 20.0, 80.0),
                                  (130.0, 10.0, 20.0)]
    finally:
        engine.dispose()


def test_shares_of_collectors_add_up_and_silence_is_a_gap(client, engine):
    """Two collectors on one RabbitMQ queue push their shares a quarter second apart;
    each slot is their sum. Before the first push and after 1.5 s without one: gaps."""
    set_collector_status(engine, "rabbit-a", updated_at=NOW, stats={
        "live_points": pushes([(3.0, 10.0)] * 20, end=NOW - 5)})
    set_collector_status(engine, "rabbit-b", updated_at=NOW, stats={
        "live_points": pushes([(4.0, 12.0)] * 10, end=NOW - 5.25)})
    answer = client.get("/api/v1/throughput").get_json()
    points = answer["points"]
    assert answer["step"] == 0.5 and answer["hold"] == 1.5 and len(points) == 120
    assert points[-1][0] == NOW and points[0][0] == NOW - 59.5
    by_time = {t: (tasks, events) for t, tasks, events in points}
    assert by_time[NOW - 15] == (None, None)  # before the first push
    assert by_time[NOW - 14.5] == (3.0, 10.0)  # a's first push
    assert by_time[NOW - 10] == (3.0, 10.0)  # b not yet
    assert by_time[NOW - 9.5] == (7.0, 22.0)  # b's first push, 0.25 s before the slot
    assert by_time[NOW - 5] == (7.0, 22.0)
    assert by_time[NOW - 4] == (7.0, 22.0)  # silent for 1 and 1.25 s: rates still hold
    assert by_time[NOW - 3.5] == (None, None)  # silent for 1.5 s and more: a gap


def test_no_collector_or_unreadable_rows_give_gaps_not_errors(client, engine):
    set_collector_status(engine, "old", updated_at=NOW - 3600,
                         stats={"live_points": pushes([(5.0, 5.0)] * 4, end=NOW - 3600)})
    set_collector_status(engine, "odd", updated_at=NOW, stats={
        "live_points": [["x", 1, 2], [NOW, 1, "2"], [NOW, float("nan"), 1], 7, None]})
    set_collector_status(engine, "broken", updated_at=NOW, stats={"live_points": "no"})
    points = client.get("/api/v1/throughput").get_json()["points"]
    assert all(tasks is None and events is None for _, tasks, events in points)


def test_a_collector_clock_ahead_of_the_web_still_shows_its_newest_push(client, engine):
    set_collector_status(engine, "ahead", updated_at=NOW, stats={
        "live_points": pushes([(2.0, 4.0)] * 6, end=NOW + 2)})
    points = client.get("/api/v1/throughput").get_json()["points"]
    assert points[-1] == [NOW + 2, 2.0, 4.0]


def test_throughput_takes_no_parameters(client):
    answer = client.get("/api/v1/throughput?window=1h")
    assert answer.status_code == 400
    assert answer.get_json()["error"]["parameter"] == "window"
