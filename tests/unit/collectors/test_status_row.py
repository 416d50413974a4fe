"""The collector's status row follows the connection at once, not a tick later."""
from __future__ import annotations

import json
import time

from sqlalchemy import select

from helpers.support import wait_for
from lookout.collectors.buffer import EventBuffer
from lookout.collectors.stats import CollectorStats
from lookout.collectors.status import StatusReporter
from lookout.core.config import Settings
from lookout.core.store import db
from lookout.core.store.models import CollectorStatus


def row(engine) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(select(CollectorStatus.__table__)).mappings().one())


def test_a_connection_change_is_written_at_once_and_a_requested_stop_says_so(sqlite_url):
    """With a 60 s tick, the row still says connected within moments of connecting (the
    receive thread sets `status_due`); stopped on request, the last row says stopped."""
    engine = db.make_engine(sqlite_url)
    stats = CollectorStats()
    reporter = StatusReporter(engine, Settings(database_url=sqlite_url), stats,
                              EventBuffer(), interval=60.0).start()
    try:
        wait_for(lambda: row(engine)["connected"] is False, 5, 0.05, "the first row")
        began = time.monotonic()
        stats.connected, stats.connected_since = True, time.time()
        stats.status_due.set()  # what the receiver does when it connects
        wait_for(lambda: row(engine)["connected"], 5, 0.02, "the row to say connected")
        assert time.monotonic() - began < 5  # not the 60 s tick
        stats.connected = False
        stopped = time.monotonic()
        reporter.stop(asked=True)
        assert time.monotonic() - stopped < 5  # the tick's wait is cut short
    finally:
        reporter.stop()
    final = row(engine)
    assert final["connected"] is False and json.loads(final["stats"])["stopped"] is True
    engine.dispose()


def test_two_collectors_under_one_name_are_told_apart_and_reported(sqlite_url, make_app,
                                                                   caplog):
    """Two hosts running `lookout collect` without --name both write the row "default":
    each overwrote the other's with no word (a trial). Now each says so in its log and its
    rows, and /healthz warns; a restart under the same name (the earlier run's row is
    older than this run) is no clash."""
    import logging

    engine = db.make_engine(sqlite_url)
    settings = Settings(database_url=sqlite_url, collector_name="default")
    earlier = StatusReporter(engine, settings, CollectorStats(), EventBuffer())
    earlier.write()  # a previous run of this collector
    one = StatusReporter(engine, settings, CollectorStats(
        connected=True, connected_since=time.time(), last_event_at=time.time()),
        EventBuffer())
    one.write()
    assert "name_shared_with" not in json.loads(row(engine)["stats"])

    other = StatusReporter(engine, settings, CollectorStats(), EventBuffer())
    with caplog.at_level(logging.ERROR, logger="lookout.collectors.status"):
        other.write()  # the other host starts, after our row: no clash seen yet
        one.write()  # we see its row
        other.write()  # it sees ours
        one.write()  # said once, not every second
    assert [r.getMessage() for r in caplog.records] == [
        f"collector name 'default' is also used by another process ({p.instance}) writing "
        "this store: each overwrites the other's status; give each collector its own --name"
        for p in (other, one)]
    assert json.loads(row(engine)["stats"])["name_shared_with"] == other.instance
    engine.dispose()

    report = make_app(sqlite_url).test_client().get("/healthz").get_json()
    (collector,) = report["collectors"]
    assert collector["warning"] == (
        f"another collector uses this name ({other.instance}): their reports overwrite "
        "each other; give each its own --name")


def test_a_second_collector_on_one_sqlite_store_is_told_to_use_postgresql(sqlite_url, caplog):
    """Two collectors on one SQLite file started without a word (a side-by-side trial)."""
    from helpers.factories import set_collector_status
    from lookout.collectors.status import warn_sqlite_neighbours

    engine = db.make_engine(sqlite_url)
    try:
        warn_sqlite_neighbours(engine, "second")
        assert "SQLite" not in caplog.text  # alone: nothing to say
        set_collector_status(engine, "first")
        warn_sqlite_neighbours(engine, "second")
        assert "collector(s) first also write this SQLite store" in caplog.text
        assert "use PostgreSQL" in caplog.text
    finally:
        engine.dispose()
