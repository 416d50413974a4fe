"""Validation of control command arguments: every value a client sends, before any check
against the store or any broadcast, becomes a clean value or a 400 naming its parameter.

Allow-lists rather than pass-through: signals are the few that make sense for a task,
queue names a conservative character set, pool steps and time limits bounded.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from lookout.dashboard.web.errors import bad_parameter

SIGNALS = ("SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2")
_RATE = re.compile(r"^\d{1,9}(\.\d{1,6})?(/[smh])?$")
_QUEUE = re.compile(r"^[\w.:@/-]{1,255}$")
MAX_POOL_STEP = 64
MAX_TIME_LIMIT = 7 * 86400.0


def parse_rate(rate: Any) -> str | None:
    """'10/m'-style rate, or None (no limit) for an empty value, as Celery's rate() takes."""
    if rate in (None, "", "0"):
        return None  # Celery disables the limit for a falsy value
    if not isinstance(rate, str) or not _RATE.match(rate):
        raise bad_parameter("rate_limit", "not a rate like 10/s, 100/m or 1000/h")
    return rate


def parse_time_limits(soft: Any, hard: Any) -> tuple[float | None, float | None]:
    soft, hard = _seconds(soft, "soft"), _seconds(hard, "hard")
    if soft is not None and hard is not None and soft > hard:
        raise bad_parameter("soft", "must not exceed the hard limit")
    return soft, hard


def parse_signal(value: Any) -> str:
    name = str(value or "SIGTERM").strip().upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name not in SIGNALS:
        raise bad_parameter("signal", f"unknown signal {str(value)[:20]!r} "
                            f"(one of: {', '.join(SIGNALS)})")
    return name


def _seconds(value: Any, parameter: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit integer
        raise bad_parameter(parameter, "seconds as a number") from None
    if not 0 < seconds <= MAX_TIME_LIMIT:
        raise bad_parameter(parameter, f"between 0 and {MAX_TIME_LIMIT:g} seconds")
    return seconds


def _count(arguments: dict, name: str, default: int | None = 1, low: int = 1) -> int | None:
    value = arguments.get(name, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise bad_parameter(name, "an integer")
    try:
        number = int(value)
    except ValueError:
        raise bad_parameter(name, "an integer") from None
    if not low <= number <= MAX_POOL_STEP * 16:
        raise bad_parameter(name, f"between {low} and {MAX_POOL_STEP * 16}")
    return number


def _pool_step(arguments: dict) -> dict:
    n = _count(arguments, "n")
    if n > MAX_POOL_STEP:
        raise bad_parameter("n", f"at most {MAX_POOL_STEP} at a time")
    return {"n": n}


def _autoscale(arguments: dict) -> dict:
    high, low = _count(arguments, "max", None), _count(arguments, "min", 0, low=0)
    if high is None:
        raise bad_parameter("max", "required")
    if low > high:
        raise bad_parameter("min", "must not exceed max")
    return {"max": high, "min": low}


def _queue(arguments: dict) -> dict:
    queue = arguments.get("queue")
    if not isinstance(queue, str) or not _QUEUE.match(queue):
        raise bad_parameter("queue", "a queue name (letters, digits, _ . : @ / -)")
    return {"queue": queue}


def _add_consumer(arguments: dict) -> dict:
    result = _queue(arguments)
    for name in ("exchange", "routing_key"):
        value = arguments.get(name)
        if value is not None:
            if not isinstance(value, str) or not _QUEUE.match(value):
                raise bad_parameter(name, "letters, digits, _ . : @ / -")
            result[name] = value
    return result


def _no_arguments(arguments: dict) -> dict:
    return {}


# What each worker command's JSON body may hold (anything else is a 400).
WORKER_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "pool_grow": ("n",), "pool_shrink": ("n",), "autoscale": ("min", "max"),
    "pool_restart": (), "add_consumer": ("queue", "exchange", "routing_key"),
    "cancel_consumer": ("queue",), "shutdown": (),
}
WORKER_COMMANDS: dict[str, Callable[[dict], dict]] = {
    "pool_grow": _pool_step,
    "pool_shrink": _pool_step,
    "autoscale": _autoscale,
    "pool_restart": _no_arguments,
    "add_consumer": _add_consumer,
    "cancel_consumer": _queue,
    "shutdown": _no_arguments,
}
