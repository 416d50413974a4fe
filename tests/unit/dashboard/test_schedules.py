"""Schedules: beat entries in words, Celery's next-run estimate, last run from the history."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from celery import Celery
from celery.schedules import crontab, schedule

from helpers.apps import build_app
from helpers.factories import add_task
from lookout.core.store.db import make_engine
from lookout.dashboard.schedules.describe import describe, describe_interval, describe_solar
from lookout.dashboard.schedules.service import entries, last_run, next_run


def celery_app(**beat_schedule) -> Celery:
    app = Celery("beat-test", broker="memory://", set_as_current=False)
    app.conf.beat_schedule = beat_schedule
    return app


@pytest.mark.parametrize("seconds, words", [
    (5, "every 5 seconds"), (1, "every second"), (60, "every minute"),
    (90, "every 1 minute 30 seconds"), (3600, "every hour"), (7200, "every 2 hours"),
    (86400 + 3600, "every 1 day 1 hour"), (0.5, "every 0.5 seconds"),
])
def test_interval_in_words(seconds, words):
    assert describe_interval(seconds) == words


@pytest.mark.parametrize("cron, words, expression", [
    (crontab(), "every minute (UTC)", "* * * * *"),
    (crontab(minute="*/15"), "every 15 minutes (UTC)", "*/15 * * * *"),
    (crontab(minute=0, hour=4), "at 04:00 every day (UTC)", "0 4 * * *"),
    (crontab(minute=5), "at minute 5 of every hour (UTC)", "5 * * * *"),
    (crontab(minute=30, hour=9, day_of_week="mon-fri"),
     "at 09:30 on Monday to Friday (UTC)", "30 9 * * 1-5"),
    (crontab(minute=0, hour="0,12", day_of_week="sun,wed"),
     "at 00:00, 12:00 on Sunday, Wednesday (UTC)", "0 0,12 * * 0,3"),
    (crontab(minute=0, hour=0, day_of_month=1, month_of_year="1,7"),
     "at 00:00 on day 1 of the month in January, July (UTC)", "0 0 1 1,7 *"),
])
def test_crontab_in_words(cron, words, expression):
    described = describe(cron)
    assert described == {"kind": "crontab", "description": words, "cron": expression}


def test_solar_in_words():
    assert describe_solar("dawn_astronomical", 40.7, -74.0) == \
        "at astronomical dawn (lat 40.7, lon -74)"
    assert describe_solar("sunset", 51.5, 0) == "at sunset (lat 51.5, lon 0)"
    assert describe_solar("solar_noon", 0, 0) == "at solar noon (lat 0, lon 0)"


def test_solar_next_run_when_ephem_is_installed():
    pytest.importorskip("ephem")
    from celery.schedules import solar

    sched = solar("sunrise", 51.5, -0.1, app=celery_app())
    assert describe(sched)["kind"] == "solar"
    estimate = next_run(sched, None)
    assert "error" not in estimate
    assert 0 < estimate["next_run_at"] - time.time() <= 2 * 86400


def test_next_run_for_interval_from_last_run():
    sched = schedule(timedelta(seconds=30), app=celery_app())
    last = time.time() - 10
    estimate = next_run(sched, last)
    assert estimate["due"] is False and estimate["estimated_from"] == "last run in history"
    assert estimate["next_run_at"] == pytest.approx(last + 30, abs=1)
    overdue = next_run(sched, time.time() - 300)
    assert overdue["due"] is True


def test_next_run_for_crontab_is_the_next_matching_minute():
    sched = crontab(minute=0, hour=4, app=celery_app())
    estimate = next_run(sched, None)
    now = datetime.now(timezone.utc)
    expected = now.replace(hour=4, minute=0, second=0, microsecond=0)
    if expected <= now:
        expected += timedelta(days=1)
    assert estimate["next_run_at"] == pytest.approx(expected.timestamp(), abs=1)


def test_last_run_prefers_matching_args(database_url):
    engine = make_engine(database_url)
    now = time.time()
    match = add_task(engine, name="proj.report", args="(1, 2)", kwargs="{'full': True}",
                     timestamp=now - 60, state="SUCCESS")
    add_task(engine, name="proj.report", args="(1, 2)", kwargs="{'full': True}",
             timestamp=now - 600, state="FAILURE")
    newest_other = add_task(engine, name="proj.report", args="(9, 9)", kwargs="{}",
                            timestamp=now - 5, state="FAILURE")
    found = last_run(engine, "proj.report", [1, 2], {"full": True})
    assert found["uuid"] == match["uuid"] and found["matched"] == "name+args"
    assert found["state"] == "SUCCESS"
    fallback = last_run(engine, "proj.report", (7,), None)
    assert fallback["uuid"] == newest_other["uuid"] and fallback["matched"] == "name"
    assert last_run(engine, "proj.never", (), {}) is None
    engine.dispose()


def test_entries_describe_each_kind_and_survive_a_bad_one(sqlite_url):
    engine = make_engine(sqlite_url)
    add_task(engine, name="proj.tick", args="()", kwargs="{}", timestamp=time.time() - 2,
             state="SUCCESS")
    app = celery_app(
        tick={"task": "proj.tick", "schedule": 10.0},
        nightly={"task": "proj.nightly", "schedule": crontab(minute=30, hour=2),
                 "args": ("x",), "kwargs": {"y": 1}, "options": {"queue": "batch"}},
        broken={"task": "proj.broken", "schedule": "every tuesday"},
    )
    items = {item["name"]: item for item in entries(app, engine)}
    assert items["tick"]["schedule"]["description"] == "every 10 seconds"
    assert items["tick"]["last_run"]["state"] == "SUCCESS"
    assert items["tick"]["next_run_at"] == pytest.approx(
        items["tick"]["last_run"]["timestamp"] + 10, abs=1)
    nightly = items["nightly"]
    assert nightly["schedule"]["cron"] == "30 2 * * *"
    assert nightly["args"] == "('x',)" and nightly["kwargs"] == "{'y': 1}"
    assert nightly["options"] == {"queue": "batch"} and nightly["last_run"] is None
    assert items["broken"]["schedule"]["kind"] == "invalid"
    engine.dispose()


def schedules_api(sqlite_url, **settings):
    app = build_app(sqlite_url, broker_url="memory://", **settings)
    try:
        return app.test_client().get("/api/v1/schedules").get_json()
    finally:
        app.extensions["lookout.engine"].dispose()


def test_api_with_app_given_as_module_string(sqlite_url):
    body = schedules_api(sqlite_url, celery_app="helpers.sample_tasks")
    assert body["configured"] is True and body["app"] == "sample_tasks"
    (item,) = body["items"]
    assert item["name"] == "tick-every-5s" and item["task"] == "sample.add"
    assert item["args"] == "(1, 2)"
    assert item["schedule"] == {"kind": "interval", "seconds": 5.0,
                                "description": "every 5 seconds"}
    assert 0 < item["next_run_at"] - time.time() <= 6


def test_api_without_app_says_how_to_give_it(sqlite_url):
    body = schedules_api(sqlite_url)
    assert body["configured"] is False and body["items"] == []
    assert "-A" in body["message"]


def test_api_reports_an_app_that_cannot_be_imported(sqlite_url):
    body = schedules_api(sqlite_url, celery_app="no_such_module_here:app")
    assert body["items"] == [] and "no_such_module_here" in body["error"]
