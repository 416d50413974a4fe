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
