"""Schedules in words: 'every 30 seconds', 'at 04:00 every day (UTC)', solar events."""
from __future__ import annotations

import calendar
from typing import Any

DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTH_NAMES = calendar.month_name  # 1-based
UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def describe_interval(seconds: float) -> str:
    """'every 5 seconds', 'every hour', 'every 1 hour 30 minutes'."""
    if seconds <= 0:
        return "continuously"
    parts, rest = [], float(seconds)
    for unit, size in UNITS:
        count = rest // size if size > 1 else round(rest, 3)
        rest -= count * size
        if count:
            parts.append(f"{count:g} {unit}" + ("" if count == 1 else "s"))
    if len(parts) == 1 and parts[0].startswith("1 "):
        return "every " + parts[0][2:]
    return "every " + " ".join(parts)


def _field(values: set[int], low: int, high: int) -> str:
    """A cron field from Celery's expanded set: '*', '*/15', '1-5', '0,30'."""
    values = sorted(values)
    if values == list(range(low, high + 1)):
        return "*"
    if len(values) > 2 and values[0] == low:
        step = values[1] - values[0]
        if values == list(range(low, high + 1, step)):
            return f"*/{step}"
    runs: list[str] = []
    start = prev = values[0]
    for value in values[1:] + [None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = value
    return ",".join(runs)


def describe_crontab(cron, tz: str = "UTC") -> tuple[str, str]:
    """(words, cron expression) for a celery crontab, from its expanded value sets."""
    minute = _field(cron.minute, 0, 59)
    hour = _field(cron.hour, 0, 23)
    dom = _field(cron.day_of_month, 1, 31)
    month = _field(cron.month_of_year, 1, 12)
    dow = _field(cron.day_of_week, 0, 6)
    expression = f"{minute} {hour} {dom} {month} {dow}"
    if minute == "*" and hour == "*":
        words = "every minute"
    elif minute.startswith("*/") and hour == "*":
        words = f"every {minute[2:]} minutes"
    elif minute.isdigit() and hour == "*":
        words = f"at minute {minute} of every hour"
    elif minute.isdigit() and hour.startswith("*/"):
        words = f"at minute {minute} of every {hour[2:]} hours"
    elif minute.isdigit() and len(cron.hour) <= 6:
        words = "at " + ", ".join(f"{h:02d}:{int(minute):02d}" for h in sorted(cron.hour))
    else:
        words = f"at minute {minute} of hour {hour}"
    if dow != "*":
        days = sorted(cron.day_of_week)
        contiguous = len(days) > 2 and days == list(range(days[0], days[-1] + 1))
        words += (f" on {DAY_NAMES[days[0]]} to {DAY_NAMES[days[-1]]}" if contiguous
                  else " on " + ", ".join(DAY_NAMES[d] for d in days))
    if dom != "*":
        words += f" on day {dom} of the month"
    if month != "*":
        words += " in " + ", ".join(MONTH_NAMES[m] for m in sorted(cron.month_of_year))
    elif dow == "*" and dom == "*" and "every" not in words:
        words += " every day"
    return f"{words} ({tz})", expression


def describe_solar(event: str, lat: float, lon: float) -> str:
    """'at astronomical dawn (lat 40.7, lon -74.0)'."""
    first, _, second = event.partition("_")
    name = f"{second} {first}" if first in ("dawn", "dusk") and second else \
        event.replace("_", " ")
    return f"at {name} (lat {lat:g}, lon {lon:g})"


def describe(schedule, tz: str = "UTC") -> dict[str, Any]:
    """Kind, words and (for crontabs) the expression of any Celery schedule object."""
    from celery.schedules import crontab, solar
    from celery.schedules import schedule as interval

    if isinstance(schedule, crontab):
        words, expression = describe_crontab(schedule, tz)
        return {"kind": "crontab", "description": words, "cron": expression}
    if isinstance(schedule, solar):
        return {"kind": "solar", "description": describe_solar(
            schedule.event, schedule.lat, schedule.lon)}
    if isinstance(schedule, interval):
        return {"kind": "interval", "seconds": schedule.run_every.total_seconds(),
                "description": describe_interval(schedule.run_every.total_seconds())}
    return {"kind": type(schedule).__name__, "description": str(schedule)[:200]}


