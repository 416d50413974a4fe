"""Validation of raw Celery events, one at a time, into compact `Event` records.

This runs on the receive path for every event, so it does only type checks, bounds and
truncation; anything wrong raises `InvalidEvent` with a short reason that is counted and
logged. One bad event never affects its neighbours in a `task.multi` batch.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, NamedTuple

from lookout.core.failures import WRAPPER_REPR, unwrapped_exception
from lookout.core.truncation import TRUNCATION_MARKER

TASK_TYPES = frozenset({
    "task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
    "task-retried", "task-rejected", "task-revoked",
})
WORKER_TYPES = frozenset({"worker-online", "worker-heartbeat", "worker-offline"})
KNOWN_TYPES = TASK_TYPES | WORKER_TYPES

# Short identifiers: longer is not truncated but refused, as it cannot be a real id/name.
MAX_ID = 255
# What the store's columns hold: 64-bit integers; epoch seconds before the year 2286
# (a 1e300 "timestamp" would pass as a float and then overflow the per-minute bucket);
# durations and rates up to 1e12 s. Outside these an event is refused, not stored wrong.
MAX_INT = 2**63 - 1
MAX_TIMESTAMP = 1e10
MAX_NUMBER = 1e12

# Field name -> kind. Kinds: "id" (short str), "text" (truncated str; non-str is
# JSON-encoded), "end_text" (text cut in the middle: `truncate`), "int", "num", "bool",
# "opt_str" (short str or None), "loadavg", "signum",
# "time" (ISO 8601 text or epoch seconds, kept as epoch seconds; left out if unreadable).
_TASK_FIELDS: dict[str, str] = {
    "name": "id", "args": "text", "kwargs": "text", "result": "text",
    "exception": "text", "traceback": "end_text", "retries": "int", "eta": "time",
    "expires": "time", "queue": "opt_str", "exchange": "opt_str",
    "routing_key": "opt_str", "root_id": "opt_str", "parent_id": "opt_str",
    "runtime": "num", "requeue": "bool", "terminated": "bool", "expired": "bool",
    "signum": "signum",
}
_WORKER_FIELDS: dict[str, str] = {
    "freq": "num", "active": "int", "processed": "int", "loadavg": "loadavg",
    "sw_ident": "opt_str", "sw_ver": "opt_str", "sw_sys": "opt_str", "pid": "int",
}


class InvalidEvent(ValueError):
    """An event that cannot be stored; `reason` is a short, countable label."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Event(NamedTuple):
    """A validated event. `fields` holds only known, checked, bounded fields."""

    type: str
    hostname: str
    timestamp: float
    local_received: float
    clock: int
    utcoffset: float | None
    uuid: str | None
    fields: dict[str, Any]

    @property
    def is_task(self) -> bool:
        return self.uuid is not None


def truncate(text: str, limit: int, keep_end: bool = False) -> str:
    """Cut `text` to `limit` characters, with a marker that says how much was cut: at the
    end, or with `keep_end` in the middle, keeping the first quarter and the last three
    (a traceback's end names the innermost frame and the exception)."""
    text = storable(text)
    if len(text) <= limit:
        return text
    marker = TRUNCATION_MARKER.format(len(text) - limit)
    if not keep_end:
        return text[:limit] + marker
    head = limit // 4
    return text[:head] + marker + text[len(text) - (limit - head):]


def storable(text: str) -> str:
    """`text` as every store can hold it: NUL and lone surrogates shown escaped.

    PostgreSQL text cannot hold NUL, and no UTF-8 store can hold a lone surrogate (a
    file name decoded with os.fsdecode, say, in a task's args): escaped, the event is
    kept and the character still visible, rather than the event refused.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def decode_body(body: Any) -> list[Any]:
    """Turn a message body (dict, list of dicts for task.multi, or JSON text) into items."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("not utf-8") from None
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            raise InvalidEvent("not json") from None
    if isinstance(body, list):
        return body
    return [body]


def validate(raw: Any, local_received: float, max_field_size: int) -> Event:
    """Check one raw event dict and return an `Event`, or raise `InvalidEvent`."""
    if not isinstance(raw, dict):
        raise InvalidEvent("not an object", type(raw).__name__)
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise InvalidEvent("missing type")
    if kind not in KNOWN_TYPES:
        raise InvalidEvent("unknown type", kind[:64])
    hostname = _short(raw.get("hostname"), "hostname")
    timestamp = _number(raw.get("timestamp"), "timestamp")
    if not 0 <= timestamp < MAX_TIMESTAMP:
        raise InvalidEvent("bad timestamp", repr(timestamp)[:32])
    clock = raw.get("clock", 0)
    if clock is None:
        clock = 0
    if not _is_int(clock):
        raise InvalidEvent("bad clock")
    clock = min(max(clock, 0), MAX_INT)  # only orders events for display
    utcoffset = raw.get("utcoffset")
    if utcoffset is not None and not (is_number(utcoffset) and abs(utcoffset) <= 24):
        utcoffset = None
    if kind in TASK_TYPES:
        uuid = _short(raw.get("uuid"), "uuid")
        spec = _TASK_FIELDS
    else:
        uuid = None
        spec = _WORKER_FIELDS
    fields: dict[str, Any] = {}
    for name, value in raw.items():  # the event's ~10 keys, not the spec's 19 names
        field_kind = spec.get(name)
        if field_kind is not None and value is not None:
            value = _check(name, field_kind, value, max_field_size)
            if value is not None:  # an unreadable time: the task is still stored
                fields[name] = value
    if fields.get("exception") == WRAPPER_REPR:  # a hard time limit, a lost worker
        fields["exception"] = unwrapped_exception(WRAPPER_REPR, fields.get("traceback"))
    return Event(kind, hostname, timestamp, local_received, int(clock),
                 float(utcoffset) if utcoffset is not None else None, uuid, fields)


def epoch_seconds(value: Any) -> float | None:
    """An eta or expires as epoch seconds, or None when it is no time Lookout can store.

    Celery sends `datetime.isoformat()` text with the sender's offset, or without one when
    the app does not use UTC; naive text is read as UTC, as the API reads times. Other
    producers may send epoch seconds. Unreadable is not invalid: the event is kept.
    """
    if isinstance(value, str):
        if len(value) > 64:  # ISO text is at most 32 characters
            return None
        try:
            moment = datetime.fromisoformat(value.strip())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            value = moment.timestamp()
        except (ValueError, OverflowError, OSError):
            return None
    elif not is_number(value):
        return None
    return float(value) if 0 <= value < MAX_TIMESTAMP else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool (one too large for a float is not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float (10**400): not a number here
        return False


def _number(value: Any, name: str) -> float:
    if value is None:
        raise InvalidEvent(f"missing {name}")
    if not is_number(value):
        raise InvalidEvent(f"bad {name}", type(value).__name__)
    return float(value)


def _short(value: Any, name: str) -> str:
    if value is None or value == "":
        raise InvalidEvent(f"missing {name}")
    if not isinstance(value, str):
        raise InvalidEvent(f"bad {name}", type(value).__name__)
    if len(value) > MAX_ID:
        raise InvalidEvent(f"oversized {name}", f"{len(value)} chars")
    return storable(value)


def _check(name: str, kind: str, value: Any, limit: int) -> Any:
    if kind == "text" or kind == "end_text":
        if not isinstance(value, str):
            try:
                value = json.dumps(value, default=repr)
            except (TypeError, ValueError):
                value = repr(value)
        return truncate(value, limit, keep_end=kind == "end_text")
    if kind == "id" or kind == "opt_str":
        if not isinstance(value, str):
            raise InvalidEvent(f"bad {name}", type(value).__name__)
        if len(value) > MAX_ID:
            raise InvalidEvent(f"oversized {name}", f"{len(value)} chars")
        return storable(value)
    if kind == "int":
        if not _is_int(value) or not 0 <= value <= MAX_INT:
            raise InvalidEvent(f"bad {name}", repr(value)[:32])
        return value
    if kind == "num":
        if not is_number(value) or not 0 <= value <= MAX_NUMBER:
            raise InvalidEvent(f"bad {name}", repr(value)[:32])
        return float(value)
    if kind == "bool":
        return bool(value)
    if kind == "time":
        return epoch_seconds(value)
    if kind == "signum":
        if _is_int(value) and abs(value) <= MAX_INT:
            return value
        if isinstance(value, str) and len(value) <= 16:
            return storable(value)
        raise InvalidEvent(f"bad {name}", repr(value)[:32])
    if kind == "loadavg":
        if (isinstance(value, (list, tuple)) and len(value) <= 3
                and all(is_number(v) for v in value)):
            return [round(float(v), 2) for v in value if abs(v) <= MAX_NUMBER]
        raise InvalidEvent(f"bad {name}", repr(value)[:32])
    raise AssertionError(kind)
