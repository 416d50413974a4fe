"""Schedules in words, and due times in each schedule's own zone (across DST changes)."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from celery import Celery
from celery.schedules import crontab, schedule, solar

from lookout.dashboard.schedules import timing
from lookout.dashboard.schedules.describe import describe_interval, describe_solar


def utc(*parts) -> float:
    return datetime(*parts, tzinfo=timezone.utc).timestamp()


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
    described = timing.Cron.from_celery(cron).describe()
    assert described == {"kind": "crontab", "description": words, "cron": expression,
                         "timezone": "UTC"}


def test_solar_in_words():
    assert describe_solar("dawn_astronomical", 40.7, -74.0) == \
        "at astronomical dawn (lat 40.7, lon -74)"
    assert describe_solar("sunset", 51.5, 0) == "at sunset (lat 51.5, lon 0)"
    assert describe_solar("solar_noon", 0, 0) == "at solar noon (lat 0, lon 0)"


def test_solar_next_run_when_ephem_is_installed():
    pytest.importorskip("ephem")
    app = Celery("solar", broker="memory://", set_as_current=False)
    sunrise = timing.from_celery(solar("sunrise", 51.5, -0.1, app=app))
    assert sunrise.describe()["kind"] == "solar"
    assert 0 < sunrise.next_after(time.time()) - time.time() <= 2 * 86400


def test_interval_counts_from_the_last_run():
    every = timing.from_celery(schedule(30))
    assert every.next_after(1000.0) == 1030.0 and every.period(0) == 30
    assert every.describe()["description"] == "every 30 seconds"


def test_crontab_in_its_own_zone_while_the_app_runs_in_utc():
    daily = timing.Cron.parse(minute=0, hour=8, tz="Asia/Shanghai")
    due = daily.next_after(utc(2026, 12, 1, 1, 0))
    assert due == utc(2026, 12, 2, 0, 0)  # 08:00 in Shanghai is midnight UTC
    assert timing.local_time(due, "Asia/Shanghai") == \
        "2026-12-02 08:00:00 CST (Asia/Shanghai)"
    assert daily.period(utc(2026, 12, 1)) == 86400


def test_app_zone_applies_to_beat_schedule_crontabs():
    app = Celery("tz", broker="memory://", set_as_current=False)
    cron = timing.from_celery(crontab(minute=0, hour=8, app=app), "America/New_York")
    assert cron.tz == "America/New_York"
    assert cron.next_after(utc(2026, 12, 1, 12, 0)) == utc(2026, 12, 1, 13, 0)


def test_daily_run_keeps_its_wall_time_across_dst():
    berlin = timing.Cron.parse(minute=0, hour=8, tz="Europe/Berlin")
    # DST starts 2026-03-29: 08:00 CET is 07:00 UTC, 08:00 CEST is 06:00 UTC.
    assert berlin.next_after(utc(2026, 3, 28, 6, 0)) == utc(2026, 3, 28, 7, 0)
    assert berlin.next_after(utc(2026, 3, 28, 7, 0)) == utc(2026, 3, 29, 6, 0)
    # ...and ends 2026-10-25.
    assert berlin.next_after(utc(2026, 10, 24, 7, 0)) == utc(2026, 10, 25, 7, 0)


def test_wall_times_that_do_not_exist_or_happen_twice_fire_once():
    night = timing.Cron.parse(minute=30, hour=2, tz="Europe/Berlin")
    # 02:30 does not exist on 2026-03-29: it fires at the instant it maps to (03:30 CEST).
    gap = night.next_after(utc(2026, 3, 28, 12, 0))
    assert gap == utc(2026, 3, 29, 1, 30)
    assert datetime.fromtimestamp(gap, ZoneInfo("Europe/Berlin")).hour == 3
    # 02:30 happens twice on 2026-10-25: once, at the first, then the next day.
    first = night.next_after(utc(2026, 10, 24, 12, 0))
    assert first == utc(2026, 10, 25, 0, 30)
    assert night.next_after(first) == utc(2026, 10, 26, 1, 30)


def test_day_of_week_and_month_must_both_match_as_in_celery():
    friday_13th = timing.Cron.parse(minute=0, hour=0, day_of_week="fri", day_of_month=13)
    assert friday_13th.next_after(utc(2026, 1, 1)) == utc(2026, 2, 13)
    leap = timing.Cron.parse(minute=0, hour=0, day_of_month=29, month_of_year=2)
    assert leap.next_after(utc(2026, 3, 1)) == utc(2028, 2, 29)
    with pytest.raises(ValueError, match="never occurs"):  # Celery refuses it outright
        timing.Cron.parse(minute=0, hour=0, day_of_month=31, month_of_year=2)
    never = timing.Cron(frozenset({0}), frozenset({0}), frozenset(range(7)),
                        frozenset({31}), frozenset({2}))
    assert never.next_after(utc(2026, 1, 1)) is None and never.period(0) is None


def test_clocked_fires_once():
    once = timing.Clocked(utc(2026, 12, 24, 18, 0))
    assert once.next_after(utc(2026, 12, 1)) == utc(2026, 12, 24, 18, 0)
    assert once.next_after(utc(2026, 12, 24, 18, 0)) is None
    assert once.describe()["description"] == "once at 2026-12-24 18:00:00 UTC"


def test_unknown_zone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        timing.Cron.parse(tz="Mars/Olympus")


def test_local_time_names_the_zone_once():
    assert timing.local_time(utc(2026, 12, 1, 8), None) == "2026-12-01 08:00:00 UTC"
    assert timing.local_time(utc(2026, 7, 1, 6), "Europe/Berlin") == \
        "2026-07-01 08:00:00 CEST (Europe/Berlin)"
    assert timing.local_time(None, "UTC") is None

