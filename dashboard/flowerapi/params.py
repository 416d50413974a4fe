"""Flower's request parameters, read where Flower reads them and refused the way Lookout does.

Flower (tornado) takes control parameters from the query string or a form body, and the
apply family's from a JSON body whatever its Content-Type. Both are read here, and a JSON
object body is accepted by the control endpoints too (Flower silently ignores one, which
surprises whoever sent `terminate: true` that way). Flower's own rules are kept (its
boolean words, "All" meaning no filter, its date format, `args` an array), but every bad
or unknown value is a 400 naming its parameter before anything is sent, where Flower
answers 400 text, 500, or ignores it.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import request

from lookout.core.sender import SEND_OPTIONS
from lookout.dashboard.history.query import TaskFilters, parse_state
from lookout.dashboard.web.errors import bad_parameter
from lookout.dashboard.web.params import json_body, reject_unknown

TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})  # Flower's strtobool
FALSE = frozenset({"n", "no", "f", "false", "off", "0"})
SORT_KEYS = ("name", "state", "received", "started")  # Flower's, each optionally "-"
RECEIVED_FORMAT = "%Y-%m-%d %H:%M"
TASK_LIST_PARAMS = frozenset({"limit", "offset", "sort_by", "workername", "taskname",
                              "state", "received_start", "received_end", "search"})
DEFAULT_TASKS = 1000  # Flower returns every task it holds; Lookout's history is bigger
MAX_TASKS = 10_000
MAX_OFFSET = 100_000  # deeper pages: /api/v1/tasks and its cursors
MAX_NAME = 255
MAX_BODY = 1024 * 1024
MAX_WAIT = 300.0  # the longest `apply` or `result?timeout=` holds a request


@dataclass(frozen=True)
class TaskListQuery:
    filters: TaskFilters = field(default_factory=TaskFilters)
    search: str | None = None
    sort_by: str | None = None  # one of SORT_KEYS, maybe with "-"; None: last changed first
    limit: int = DEFAULT_TASKS
    offset: int = 0


@dataclass(frozen=True)
class TaskCall:
    """What apply, async-apply and send-task send: arguments, options, and how long to wait."""

    args: list
    kwargs: dict
    options: dict[str, Any]
    timeout: float | None = None


def keep_body(endpoint: str | None, values: dict | None) -> None:
    """url_value_preprocessor: read the body before anything parses it as a form.

    Flask runs these before every before_request, and the app's NUL check and CSRF check
    read `request.form`, which consumes an urlencoded body; `curl -d '{"args": [1]}'`
    sends JSON exactly so, and Flower reads it as JSON. Cached, the raw body stays
    readable and the form is parsed from the cache.
    """
    if request.method == "POST":
        request.max_content_length = MAX_BODY  # a bigger body is a 413, chunked or not
        request.get_data(cache=True)


def arguments(allowed: frozenset[str]) -> dict[str, Any]:
    """Query string, form fields and a JSON object body, merged; unknown names refused."""
    values: dict[str, Any] = {**request.args.to_dict(), **request.form.to_dict()}
    values.pop("csrf_token", None)  # a browser form's CSRF field, checked by the guard
    if request.is_json:
        values.update(json_body(optional=True))
    reject_unknown(values, allowed)
    return values


def query(allowed: frozenset[str]) -> dict[str, str]:
    reject_unknown(request.args, allowed, repeatable=None)
    return request.args.to_dict()


def require(values: dict[str, Any], *names: str) -> None:
    """Flower's required arguments: missing or empty is a 400."""
    for parameter in names:
        if values.get(parameter) in (None, ""):
            raise bad_parameter(parameter, "required")


def flag(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    word = str(value).strip().lower()
    if word in TRUE or word in FALSE:
        return word in TRUE
    raise bad_parameter(name, f"not a boolean: {str(value)[:40]!r} (true/false, yes/no, 1/0)")


def integer(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise bad_parameter(name, f"not an integer: {str(value)[:40]!r}")
    if not low <= number <= high:
        raise bad_parameter(name, f"must be between {low} and {high}")
    return number


def number(value: Any, name: str, low: float, high: float) -> float:
    """A finite number from low to high: seconds to wait, time limits, countdowns."""
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds):
        raise bad_parameter(name, f"not a number: {str(value)[:40]!r}")
    if not low <= seconds <= high:
        raise bad_parameter(name, f"must be between {low:g} and {high:g}")
    return seconds


def short_text(value: Any, parameter: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise bad_parameter(parameter, f"a name of 1 to {MAX_NAME} characters is required")
    if not value.isprintable():
        raise bad_parameter(parameter, "contains control characters")
    return value


def _filter(args: dict[str, str], parameter: str) -> str | None:
    """A list filter: empty and Flower's "All" mean no filter."""
    value = args.get(parameter)
    return None if value in (None, "", "All") else short_text(value, parameter)


def _received(args: dict[str, str], parameter: str) -> float | None:
    """Flower's 'YYYY-MM-DD HH:MM', read in the server's local time as Flower does."""
    value = args.get(parameter)
    if not value:
        return None
    try:
        return time.mktime(datetime.strptime(value, RECEIVED_FORMAT).timetuple())
    except (ValueError, OverflowError):
        raise bad_parameter(parameter, f"expected 'YYYY-MM-DD HH:MM', not {value[:40]!r}") \
            from None


def task_list_query(args: dict[str, str]) -> TaskListQuery:
    """GET /api/tasks's parameters."""
    state = _filter(args, "state")
    low, high = _received(args, "received_start"), _received(args, "received_end")
    filters = TaskFilters(
        states=(parse_state(state),) if state else (),
        name=_filter(args, "taskname"), worker=_filter(args, "workername"),
        ranges=(("received_at", low, high),) if low is not None or high is not None else ())
    sort_by = args.get("sort_by") or None
    if sort_by is not None and sort_by.lstrip("-") not in SORT_KEYS:
        raise bad_parameter("sort_by", f"cannot sort by {sort_by[:40]!r} (one of: "
                            f"{', '.join(SORT_KEYS)}, each optionally prefixed with -)")
    limit = args.get("limit")
    offset = args.get("offset")
    return TaskListQuery(
        filters=filters, search=args.get("search") or None, sort_by=sort_by,
        # 0 is an empty page, as in Flower; a negative limit is a 400 (Flower: empty).
        limit=DEFAULT_TASKS if limit in (None, "") else integer(limit, "limit", 0, MAX_TASKS),
        # Flower reads a negative offset as 0 without a word; a script computing one has a
        # bug, and a first page it did not ask for hides it: a 400, as for a negative limit.
        offset=0 if offset in (None, "") else integer(offset, "offset", 0, MAX_OFFSET))


def body_fields(wait: bool) -> frozenset[str]:
    """What the JSON body of apply (`wait`), async-apply and send-task may hold."""
    return frozenset({"args", "kwargs", *SEND_OPTIONS, *(("timeout",) if wait else ())})


def task_call(wait: bool = False) -> TaskCall:
    """The JSON body of apply (`wait`), async-apply and send-task."""
    fields = body_fields(wait)
    # Flower reads only the body here; `?timeout=` would otherwise be lost without a word.
    reject_unknown(request.args, frozenset(), instead="give options in the JSON body: "
                   + ", ".join(["args", "kwargs", *sorted(fields - {"args", "kwargs"})]))
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise bad_parameter("body", "not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_parameter("body", "a JSON object is required")
    # null is "not given", as apply_async takes it (Flower passes it on): scripts send
    # {"kwargs": null, "queue": null} for what they leave out.
    body = {key: value for key, value in body.items() if value is not None}
    args, kwargs = body.pop("args", []), body.pop("kwargs", {})
    if not isinstance(args, list):
        raise bad_parameter("args", "must be an array")
    if not isinstance(kwargs, dict):
        raise bad_parameter("kwargs", "must be an object")
    timeout = body.pop("timeout", None) if wait else None
    # Flower hands any other key to apply_async; these are the ones Lookout sends.
    reject_unknown(body, fields)
    return TaskCall(args, kwargs, {key: _option(key, value) for key, value in body.items()},
                    None if timeout is None else number(timeout, "timeout", 0, MAX_WAIT))


def _option(key: str, value: Any) -> Any:
    if key in ("eta", "expires") and isinstance(value, str):
        try:  # Flower's '%Y-%m-%d %H:%M:%S.%f', or any ISO 8601 time
            return datetime.fromisoformat(value)
        except ValueError:
            if key == "eta":
                raise bad_parameter(key, "expected 'YYYY-MM-DD HH:MM:SS.ffffff'") from None
    if key in ("countdown", "expires"):  # seconds (Flower: float(...))
        return number(value, key, 0, 366 * 86400.0)
    if key == "eta":
        raise bad_parameter(key, "expected 'YYYY-MM-DD HH:MM:SS.ffffff'")
    if key == "priority":
        return integer(value, key, 0, 255)
    if key == "headers":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise bad_parameter(key, "must be an object")
        return value
    return short_text(value, key)
