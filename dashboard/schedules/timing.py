"""When an entry is due: one `Timing` per schedule kind, in the schedule's own time zone.

Beat answers "is it due now?"; Lookout needs "when was it due after this run?" to tell a
missed run from one not yet due, so each kind gives `next_after(t)`, the first due time
strictly after `t` (epoch seconds). Crontabs are walked day by day in their own zone with
zoneinfo, the way beat fires them: a wall time that does not exist (spring forward) fires
at the instant it maps to, an ambiguous one (fall back) fires once, at its first occurrence.
Day of month and day of week are both required to match, as in Celery's crontab.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lookout.dashboard.schedules.describe import describe_crontab, describe_interval, describe_solar

SEARCH_DAYS = 366 * 5  # "0 0 29 2 *" fires within four years; past five it never will


def zone(name: Any) -> ZoneInfo:
    """A ZoneInfo for a name or tzinfo (pytz and zoneinfo both carry a zone name)."""
    key = getattr(name, "key", None) or getattr(name, "zone", None) or str(name or "UTC")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {key!r}") from None


@dataclass(frozen=True)
class Interval:
    """Every N seconds, counted from the last run (beat restarts the count when it sends)."""
    seconds: float
    kind = "interval"
    relative = True

    def next_after(self, t: float) -> float | None:
        return t + self.seconds

    def period(self, now: float) -> float | None:
        return self.seconds

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "seconds": self.seconds,
                "description": describe_interval(self.seconds), "timezone": None}


@dataclass(frozen=True)
class Cron:
    """A crontab's expanded value sets, fired in `tz` (the entry's own zone)."""
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday, as in Celery
    days_of_month: frozenset[int]
    months: frozenset[int]
    tz: str = "UTC"
    kind = "crontab"
    relative = False

    @classmethod
    def from_celery(cls, cron, tz: Any = "UTC") -> "Cron":
        return cls(frozenset(cron.minute), frozenset(cron.hour), frozenset(cron.day_of_week),
                   frozenset(cron.day_of_month), frozenset(cron.month_of_year),
                   zone(tz).key)

    @classmethod
    def parse(cls, minute="*", hour="*", day_of_week="*", day_of_month="*",
              month_of_year="*", tz: Any = "UTC") -> "Cron":
        from celery.schedules import crontab

        return cls.from_celery(crontab(minute=minute, hour=hour, day_of_week=day_of_week,
                                       day_of_month=day_of_month,
                                       month_of_year=month_of_year), tz)

    def _day_fires(self, day: date) -> bool:
        return (day.month in self.months and day.day in self.days_of_month
                and day.isoweekday() % 7 in self.days_of_week)

    def next_after(self, t: float) -> float | None:
        tz = zone(self.tz)
        day = datetime.fromtimestamp(t, tz).date()
        times = [(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]
        for _ in range(SEARCH_DAYS):
            if self._day_fires(day):
                for hour, minute in times:
                    wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
                    fires = wall.timestamp()  # fold=0: first occurrence; gaps map forward
                    if fires > t:
                        return fires
            day += timedelta(days=1)
        return None

    def period(self, now: float) -> float | None:
        first = self.next_after(now)
        second = self.next_after(first) if first is not None else None
        return None if second is None else second - first

    def describe(self) -> dict[str, Any]:
        words, expression = describe_crontab(self, self.tz)
        return {"kind": self.kind, "description": words, "cron": expression,
                "timezone": self.tz}

    # describe_crontab reads Celery's attribute names.
    minute = property(lambda self: self.minutes)
    hour = property(lambda self: self.hours)
    day_of_week = property(lambda self: self.days_of_week)
    day_of_month = property(lambda self: self.days_of_month)
    month_of_year = property(lambda self: self.months)


@dataclass(frozen=True)
class Clocked:
    """Once, at a fixed instant (django-celery-beat's ClockedSchedule, always one-off)."""
    at: float
    kind = "clocked"
    relative = False

    def next_after(self, t: float) -> float | None:
        return self.at if self.at > t else None

    def period(self, now: float) -> float | None:
        return None

    def describe(self) -> dict[str, Any]:
        when = datetime.fromtimestamp(self.at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        return {"kind": self.kind, "description": f"once at {when} UTC", "at": self.at,
                "timezone": "UTC"}


@dataclass(frozen=True)
class Solar:
    """Sunrise, dusk...: Celery's own solar schedule does the astronomy (needs ephem)."""
    event: str
    lat: float
    lon: float
    kind = "solar"
    relative = False

    def next_after(self, t: float) -> float | None:
        from celery.schedules import solar

        schedule = solar(self.event, self.lat, self.lon)
        last = datetime.fromtimestamp(t, timezone.utc)
        now = schedule.now()
        return (now + schedule.remaining_estimate(last)).timestamp()

    def period(self, now: float) -> float | None:
        return 86400.0

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": describe_solar(self.event, self.lat, self.lon),
                "timezone": None}


Timing = Interval | Cron | Clocked | Solar


def from_celery(schedule: Any, tz: Any = "UTC") -> Timing:
    """A Timing for a Celery schedule object (beat_schedule or RedBeat entries).

    A crontab with its own zone (django-celery-beat's TzAwareCrontab) keeps it; any other
    crontab fires in the app's zone `tz`, as beat does.
    """
    from celery.schedules import crontab, solar
    from celery.schedules import schedule as interval

    if isinstance(schedule, crontab):
        own = schedule.__dict__.get("tz")
        return Cron.from_celery(schedule, own if own is not None else tz)
    if isinstance(schedule, solar):
        return Solar(schedule.event, float(schedule.lat), float(schedule.lon))
    if isinstance(schedule, interval):
        return Interval(schedule.run_every.total_seconds())
    raise ValueError(f"schedule kind {type(schedule).__name__} is not supported")


def local_time(t: float | None, tz: str | None) -> str | None:
    """'2026-12-01 08:00 CST (Asia/Shanghai)': a due time as the schedule's zone shows it."""
    if t is None:
        return None
    tz = tz or "UTC"
    when = datetime.fromtimestamp(t, zone(tz))
    named = "" if when.tzname() == tz else f" ({tz})"
    return f"{when:%Y-%m-%d %H:%M:%S} {when.tzname()}{named}"
