"""The one way every view parses what a client sends: query parameters and JSON bodies.

Every bad value becomes a 400 naming its parameter (`bad_parameter`), before any SQL is
built or any broker is contacted. Feature packages add their own parsers on top of these
(the task list's filters live in history/query.py).
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Mapping

from flask import request

from lookout.core.config import parse_duration
from lookout.dashboard.web.errors import ApiError, bad_parameter

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_INT = 2**63 - 1  # what an integer column (and its bound parameter) holds
MAX_ROW_ID = 2**31 - 1  # an Integer primary key on PostgreSQL (int4)


def row_id(value: int, what: str) -> int:
    """A row id from a URL (`<int:...>`): one past MAX_ROW_ID names no row, and was a 500
    as the database refused it as a parameter (a hostile-input trial); now a 404."""
    if not 1 <= value <= MAX_ROW_ID:
        raise ApiError(404, f"no {what} {value}"[:200])
    return value


def refuse_nul() -> None:
    """before_request: no NUL in the path, query or form, whatever the view.

    PostgreSQL refuses NUL in text (a 500 if it got that far) and SQLite's LIKE reads it
    as the end of the pattern (`q=%00` matched every row); no real value contains one.
    """
    if "\x00" in request.path:
        raise bad_parameter("path", "contains a NUL character")
    for source in (request.args, request.form if request.method == "POST" else {}):
        for name, value in source.items(multi=True) if source else ():
            if "\x00" in name or "\x00" in value:
                raise bad_parameter(name.replace("\x00", "\\x00")[:40],
                                    "contains a NUL character")


def reject_unknown(args: Mapping[str, Any], allowed: frozenset[str],
                   repeatable: frozenset[str] | None = frozenset(), *,
                   instead: str = "") -> None:
    """Refuse parameters we do not know: a typo like `satte=` must not silently match all.
    And a one-value parameter given twice (`worker=a&worker=b` read as `worker=a` was a
    wrong answer, found by a new user); `repeatable` names those that take several, None
    lets every one repeat (the Flower API: Flower reads one of them without a word).
    `instead`: for an endpoint that takes none, what to do instead (see `_unknown_parameter`)."""
    for name in args:
        if name not in allowed:
            raise bad_parameter(name, _unknown_parameter(args, allowed, instead))
    getlist = getattr(args, "getlist", None)  # a query string; a JSON body cannot repeat
    if repeatable is None or getlist is None:
        return
    for name in args:
        if name not in repeatable and len(getlist(name)) > 1:
            raise bad_parameter(name, "given more than once: it takes one value")


def _unknown_parameter(args: Mapping[str, Any], allowed: frozenset[str],
                       instead: str = "") -> str:
    """The 400's text: the names allowed, or that there are none. An empty list read
    "unknown parameter (allowed: )", which left a Flower user sending apply's `timeout`
    in the query string no wiser (it goes in the JSON body: `instead` says so)."""
    if allowed:
        return f"unknown parameter (allowed: {', '.join(sorted(allowed))})"
    kind = "query parameters" if hasattr(args, "getlist") else "parameters"  # a query string
    told = f"unknown parameter: this endpoint takes no {kind}"
    return f"{told} ({instead})" if instead else told


def json_flag(body: Mapping[str, Any], name: str, default: bool) -> bool:
    """A JSON true or false; missing or null is `default`. Anything else is a 400: the
    text "false" is truthy, and for `terminate` that would kill a running task."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_parameter(name, "true or false")
    return value


def request_json() -> Any:
    """The body read as JSON, or None when it is not JSON. A body nested deeper than
    Python's recursion limit (`[[[[...`) is a 400: `silent=True` catches only ValueError,
    and the RecursionError was a 500 on every JSON endpoint (a hostile-input trial)."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        raise bad_parameter("body", "nested too deeply") from None


def json_body(optional: bool = False) -> dict:
    """The request's JSON object; `optional` lets an empty body stand for {}, whatever its
    Content-Type (scripts often send `application/json` on every request, as Flower
    accepts)."""
    if optional and not request.get_data(cache=True):
        return {}
    body = request_json()
    if not isinstance(body, dict):
        raise bad_parameter("body", "a JSON object is required")
    if _non_finite(body):  # Python's json reads 1e999 as inf and NaN as nan: JSON has neither
        raise bad_parameter("body", "numbers must be finite")
    return body


def _non_finite(value) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


def parse_limit(value: str | None, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except ValueError:
        raise bad_parameter("limit", f"not an integer: {value[:40]!r}") from None
    if not 1 <= limit <= maximum:
        raise bad_parameter("limit", f"must be between 1 and {maximum}")
    return limit


def parse_number(value: str, parameter: str = "value") -> float:
    try:
        number = float(value)
    except ValueError:
        raise bad_parameter(parameter, f"not a number: {value[:40]!r}") from None
    if not math.isfinite(number):
        raise bad_parameter(parameter, "must be a finite number")
    return number


def parse_timestamp(value: str, parameter: str = "value") -> float:
    """Epoch seconds ("1700000000.5") or ISO 8601 ("2026-11-21T22:00:00Z"; naive = UTC)."""
    try:
        float(value)
    except ValueError:
        pass
    else:
        return parse_number(value, parameter)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise bad_parameter(parameter, f"not epoch seconds or ISO 8601: {value[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse_window(value: str | None, default: str = "1h", *, minimum: float = 60,
                 maximum: float = 90 * 86400, parameter: str = "window") -> float:
    """A look-back window like 5m, 1h, 24h, 7d (the settings' duration syntax) -> seconds."""
    raw = (value or default).strip()
    try:
        seconds = parse_duration(raw[:40])
    except ValueError:
        raise bad_parameter(parameter, f"not a window like 5m, 1h, 24h or 7d: {raw[:40]!r}") \
            from None
    if not minimum <= seconds <= maximum:
        raise bad_parameter(parameter, f"must be between {int(minimum)}s and {int(maximum)}s")
    return float(seconds)
