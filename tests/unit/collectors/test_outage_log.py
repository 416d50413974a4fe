"""A store outage is logged once per background job, again every few minutes, then its
end; anything else is logged in full every time (collectors/outage_log.py)."""
from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError

from lookout.collectors.outage_log import REPEAT_EVERY, OutageLog


def refused() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(
        "connection failed: port 1 failed: Connection refused\n\tIs the server running?"))


def test_an_outage_is_said_once_then_every_few_minutes_then_its_end(caplog):
    now = [100.0]
    outage = OutageLog(logging.getLogger("test.outage"), "queue sampling", lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.outage"):
        for _ in range(50):  # a job retrying every second
            outage.failed(refused())
            now[0] += 1
        now[0] = 100 + REPEAT_EVERY
        outage.failed(refused())
        outage.failed(refused())
        now[0] += 12
        outage.succeeded()
        outage.succeeded()  # no outage: nothing to say
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "queue sampling: store unavailable (connection failed: port 1 failed: "
                    "Connection refused); retrying, next report in 300 s if it lasts"),
        ("WARNING", "queue sampling: store still unavailable after 300 s (connection "
                    "failed: port 1 failed: Connection refused)"),
        ("INFO", "queue sampling: store answers again, after 312 s")]
    assert not any(r.exc_info for r in caplog.records)
    assert not outage.in_outage


def test_an_error_that_is_no_outage_keeps_its_traceback_every_time(caplog):
    outage = OutageLog(logging.getLogger("test.outage"), "alert evaluation")
    with caplog.at_level(logging.INFO, logger="test.outage"):
        for _ in range(2):
            try:
                {}["missing"]
            except KeyError as exc:
                outage.failed(exc)
    assert [r.getMessage() for r in caplog.records] == ["alert evaluation failed"] * 2
    assert all(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
    assert not outage.in_outage


def test_a_store_without_its_tables_yet_is_an_outage_too(database_url):
    """A collector started while its store was away upgrades the schema once it answers;
    a job asking for a table in between met "relation does not exist" and logged a
    traceback (seen in the suite)."""
    from sqlalchemy import text

    from lookout.collectors.outage_log import is_outage
    from lookout.core.store import db

    engine = db.make_engine(database_url)  # SQLite says it as an OperationalError
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table_yet"))
    except Exception as exc:  # noqa: BLE001 - the error is what is checked
        assert is_outage(exc)
    else:
        raise AssertionError("the query should have failed")
    finally:
        engine.dispose()
    assert not is_outage(KeyError("x"))
