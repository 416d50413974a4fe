"""Failure fingerprints: one group per kind of failure, however many ids it mentions.

"Order 48151 not found" and "Order 62342 not found" are one problem. The fingerprint is
the exception type, its message with the variable parts replaced (uuids, hex ids, numbers,
quoted strings), and the innermost frame of the traceback (file and function, not the line
number, which moves with every deploy). Task names are left out on purpose: the same
broken dependency failing in many tasks is one group, with the task names listed.
"""
from __future__ import annotations

import hashlib
import re

_TYPE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*(?:\((.*)\))?\s*$", re.S)
_PATTERNS = (
    (re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                r"[0-9a-fA-F]{12}"), "<uuid>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b(?<=\w{8})"), "<hex>"),
    (re.compile(r"\\?'(?:[^'\\]|\\.)*\\?'|\"(?:[^\"\\]|\\.)*\""), "<str>"),
    (re.compile(r"(?<![\w<])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<n>"),
)
_FRAME = re.compile(r'File "([^"]+)", line \d+, in (\S+)')
MAX_MESSAGE = 300


def split_exception(text: str | None) -> tuple[str, str]:
    """('KeyError', "'x'") from the event's repr "KeyError('x')"."""
    text = (text or "").strip()
    match = _TYPE.match(text)
    if match is None:
        return "Exception", text
    return match.group(1), (match.group(2) or "").strip()


def normalise(message: str) -> str:
    # The repr of the message is usually one quoted string: look inside it.
    inner = message
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        inner = inner[1:-1]
    for pattern, placeholder in _PATTERNS:
        inner = pattern.sub(placeholder, inner)
    return re.sub(r"\s+", " ", inner).strip()[:MAX_MESSAGE]


def innermost_frame(traceback: str | None) -> str:
    frames = _FRAME.findall(traceback or "")
    if not frames:
        return ""
    path, function = frames[-1]
    return f"{path.rsplit('/', 1)[-1]}:{function}"


def fingerprint(exception: str | None, traceback: str | None) -> dict[str, str]:
    """The group key and what it is made of."""
    kind, message = split_exception(exception)
    pattern = normalise(message)
    frame = innermost_frame(traceback)
    key = hashlib.sha1(f"{kind}|{pattern}|{frame}".encode()).hexdigest()[:16]
    return {"fingerprint": key, "exception_type": kind, "message": pattern, "frame": frame}
