"""Parsing of API query parameters into plain values, and the opaque pagination cursor.

Everything a client sends is validated here, before any SQL is built, so every bad value
becomes a 400 that names its parameter. Sort columns are chosen from an allow-list and
values are passed on as bound parameters, never spliced into SQL.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from lookout.dashboard.web.errors import bad_parameter
from lookout.dashboard.web.params import (
    DEFAULT_LIMIT,
    MAX_INT,
    parse_limit,
    parse_number,
    parse_timestamp,
    reject_unknown,
)

# Celery's task states (celery.states plus REJECTED, which the events produce), and
# EXPIRED: a filter, not a stored state. Celery revokes an expired task (REVOKED, and its
# task-revoked says expired), so REVOKED keeps every revoke and EXPIRED only those.
STATES = ("PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED",
          "REJECTED", "EXPIRED")
# API sort key -> (tasks column, nullable). A leading "-" means descending.
SORTS: dict[str, tuple[str, bool]] = {
    "timestamp": ("timestamp", False),
    "received_at": ("received_at", True),
    "started_at": ("started_at", True),
    "succeeded_at": ("succeeded_at", True),
    "runtime": ("runtime", True),
    "eta": ("eta", True),
    "queue_wait": ("queue_wait", True),
    "updated_at": ("updated_at", False),
    "name": ("name", True),
    "state": ("state", False),
    "worker": ("worker", True),
}
DEFAULT_SORT = "-timestamp"
MAX_TEXT = 255  # longest accepted value for an exact-match or search filter

TASK_LIST_PARAMS = frozenset({
    "state", "name", "worker", "queue", "root_id", "parent_id", "q",
    "after", "before", "received_after", "received_before", "started_after", "started_before",
    "eta_min", "eta_max", "runtime_min", "runtime_max", "lost", "sort", "limit", "cursor",
})


@dataclass(frozen=True)
class Sort:
    key: str  # as the client wrote it, e.g. "-runtime"
    column: str
    descending: bool
    nullable: bool


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: the sort value and uuid of its last row."""

    value: Any
    uuid: str


@dataclass(frozen=True)
class TaskFilters:
    """Everything that narrows the task list; also the key of the cached total."""

    states: tuple[str, ...] = ()
    name: str | None = None
    # `name` with `*` (any run of characters): matched case-insensitively (text_search.py).
    name_pattern: str | None = None
    worker: str | None = None
    queue: str | None = None
    root_id: str | None = None
    parent_id: str | None = None
    q: str | None = None
    # column -> (lower bound or None, upper bound or None), inclusive.
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    # lost=true: open tasks whose worker died (core/trouble.py); judged at `lost_at`.
    lost: bool = False
    lost_at: float | None = None


@dataclass(frozen=True)
class TaskQuery:
    filters: TaskFilters = field(default_factory=TaskFilters)
    sort: Sort = field(default_factory=lambda: parse_sort(DEFAULT_SORT))
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None
    params: tuple = ()  # the request's own parameters, carried by the next cursor


def parse_task_query(args) -> TaskQuery:
    """Turn the /api/v1/tasks query string (a werkzeug MultiDict) into a TaskQuery.

    A cursor carries the parameters of the page that made it: `?cursor=...` alone gets
    the next page of the same query; repeating the parameters exactly is fine too, but
    a cursor with other filters, sort or limit is a 400 (it would page another list).
    """
    reject_unknown(args, TASK_LIST_PARAMS, repeatable=frozenset({"state"}))
    own = sorted((k, v) for k, v in args.items(multi=True) if k != "cursor")
    raw_cursor = args.get("cursor")
    if raw_cursor:
        carried = cursor_params(raw_cursor)
        if carried is not None and not own:
            args = MultiDict([*carried, ("cursor", raw_cursor)])
            own = carried
        elif carried is not None and own != carried:
            raise bad_parameter("cursor", "this cursor belongs to a query with other "
                                "parameters: repeat them exactly, or send the cursor alone")
    # Repeated (state=A&state=B) or comma-separated (state=A,B); order kept, duplicates not.
    states = tuple(dict.fromkeys(parse_state(part) for value in args.getlist("state")
                                 for part in value.split(",") if part.strip()))
    ranges = []
    for column, low, high, parse in (
            ("timestamp", "after", "before", _epoch),
            ("received_at", "received_after", "received_before", _epoch),
            ("started_at", "started_after", "started_before", _epoch),
            ("eta", "eta_min", "eta_max", _epoch),
            ("runtime", "runtime_min", "runtime_max", _seconds)):
        lo, hi = _optional(args, low, parse), _optional(args, high, parse)
        if lo is not None or hi is not None:
            ranges.append((column, lo, hi))
    name = _text(args, "name")
    pattern = name if name is not None and "*" in name else None
    filters = TaskFilters(
        states=states, name=None if pattern else name, name_pattern=pattern,
        worker=_text(args, "worker"), queue=_text(args, "queue"),
        root_id=_text(args, "root_id"), parent_id=_text(args, "parent_id"),
        q=_text(args, "q"), ranges=tuple(ranges), lost=_flag(args, "lost"))
    sort = parse_sort(args.get("sort") or DEFAULT_SORT)
    return TaskQuery(filters=filters, sort=sort, limit=parse_limit(args.get("limit")),
                     cursor=decode_cursor(raw_cursor, sort) if raw_cursor else None,
                     params=tuple(own))


def _flag(args, name: str) -> bool:
    raw = args.get(name)
    if raw is None or raw == "" or raw.lower() in ("false", "0", "no"):
        return False
    if raw.lower() in ("true", "1", "yes"):
        return True
    raise bad_parameter(name, f"true or false, not {raw[:40]!r}")


def parse_state(value: str) -> str:
    state = value.strip().upper()
    if state not in STATES:
        raise bad_parameter("state", f"unknown state {value[:40]!r} (known: {', '.join(STATES)})")
    return state


def parse_sort(value: str) -> Sort:
    key = value.strip()
    descending = key.startswith("-")
    name = key.lstrip("-+")
    if name not in SORTS:
        raise bad_parameter("sort", f"cannot sort by {value[:40]!r} (allowed: "
                            f"{', '.join(SORTS)}, each optionally prefixed with -)")
    column, nullable = SORTS[name]
    return Sort(key=("-" if descending else "") + name, column=column,
                descending=descending, nullable=nullable)


def encode_cursor(sort: Sort, value: Any, uuid: str, params: tuple = ()) -> str:
    """Opaque to clients: base64url JSON of the sort it belongs to, value and uuid, and
    the query parameters of the page that made it."""
    raw = json.dumps({"s": sort.key, "v": value, "u": uuid, "p": [list(p) for p in params]},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor_data(token: str) -> dict:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise bad_parameter("cursor", "malformed cursor") from None
    if not isinstance(data, dict) or not isinstance(data.get("u"), str):
        raise bad_parameter("cursor", "malformed cursor")
    return data


def cursor_params(token: str) -> list[tuple[str, str]] | None:
    """The parameters a cursor carries (sorted pairs), or None for an older cursor."""
    pairs = _cursor_data(token).get("p")
    if pairs is None:
        return None
    if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            and p[0] in TASK_LIST_PARAMS and p[0] != "cursor" for p in pairs):
        raise bad_parameter("cursor", "malformed cursor")
    return sorted((name, value) for name, value in pairs)


def decode_cursor(token: str, sort: Sort) -> Cursor:
    data = _cursor_data(token)
    if data.get("s") != sort.key:
        raise bad_parameter("cursor", f"cursor was made for sort {str(data.get('s'))[:40]!r},"
                            f" not {sort.key!r}")
    value = data.get("v")
    if value is None:
        valid = sort.nullable
    elif sort.column in ("name", "state", "worker"):
        valid = isinstance(value, str)
    else:
        valid = (isinstance(value, (int, float)) and not isinstance(value, bool)
                 and abs(value) <= MAX_INT)
    if not valid:
        raise bad_parameter("cursor", "malformed cursor")
    return Cursor(value=value, uuid=data["u"])


def _epoch(value: str, parameter: str) -> float:
    """A time filter: epoch seconds or ISO 8601 between 1970 and 2286."""
    moment = parse_timestamp(value, parameter)
    if not 0 <= moment < 1e10:
        raise bad_parameter(parameter, "must be a time between 1970 and 2286")
    return moment


def _seconds(value: str, parameter: str) -> float:
    """A duration filter: 0 to 1e12 seconds."""
    seconds = parse_number(value, parameter)
    if not 0 <= seconds <= 1e12:
        raise bad_parameter(parameter, "must be between 0 and 1e12 seconds")
    return seconds


def _optional(args, name: str, parse) -> float | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    return parse(value, name)


def _text(args, name: str) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_TEXT:
        raise bad_parameter(name, f"longer than {MAX_TEXT} characters")
    return value
