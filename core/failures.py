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

from lookout.core.truncation import CUT_MARK

_TYPE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*(?:\((.*)\))?\s*$", re.S)
_PATTERNS = (
    (re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                r"[0-9a-fA-F]{12}"), "<uuid>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b(?<=\w{8})"), "<hex>"),
    (re.compile(r"\\?'(?:[^'\\]|\\.)*\\?'|\"(?:[^\"\\]|\\.)*\""), "<str>"),
    # An address (`user684@mail.example`, a worker's `celery@host-3`): one per recipient
    # or host split a burst of one fault into a group per address (a trial: 200 groups).
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*"), "<address>"),
    (re.compile(r"(?<![\w<])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<n>"),
    # Digits glued to a word (`user684`, `shard12`, `ERR42`): a variable part too.
    (re.compile(r"(?<=[A-Za-z_])\d+"), "<n>"),
)
# Installed packages and the standard library (in a venv too), as tracebacks show them.
_LIBRARY = re.compile(r"[/\\](?:site|dist)-packages[/\\]|[/\\]lib[/\\]python\d[\d.]*[/\\]|^<frozen ")
_FRAME = re.compile(r'File "([^"]+)", line \d+, in (\S+)')
MAX_MESSAGE = 300
# What Celery sends as `exception` when the pool hands it an exception still wrapped for
# pickling (a hard time limit, a lost worker): the wrapper's empty repr, which names no
# error. The traceback sent with it ends with the real one.
WRAPPER_REPR = "ExceptionWithTraceback()"
_LAST_LINE = re.compile(r"([A-Za-z_][\w.]*)(?::\s?(.*))?$")


def unwrapped_exception(exception: str, traceback: str | None) -> str:
    """The real exception of a wrapper's repr, read from the traceback's last line:
    "billiard.exceptions.TimeLimitExceeded: TimeLimitExceeded(1,)" gives
    "TimeLimitExceeded(1,)", "ValueError: bad" gives "ValueError('bad')". Anything else,
    or no traceback, is returned unchanged."""
    if exception != WRAPPER_REPR or not traceback:
        return exception
    match = _LAST_LINE.match(traceback.rstrip().rsplit("\n", 1)[-1].strip())
    if match is None:
        return exception
    kind, message = match.group(1).rsplit(".", 1)[-1], (match.group(2) or "").strip()
    if message.startswith(kind + "(") and message.endswith(")"):
        return message  # the message is already the repr (billiard's time limits)
    return f"{kind}({message!r})" if message else f"{kind}()"


def split_exception(text: str | None) -> tuple[str, str]:
    """('KeyError', "'x'") from the event's repr "KeyError('x')"; a repr the collector cut
    short (its closing parenthesis gone) still names its type."""
    text = (text or "").strip()
    cut = CUT_MARK.search(text)
    if cut is not None:  # closed again, its quote too: it groups as if it were whole
        text = text[:cut.start()]
        quote = text.partition("(")[2][:1]
        text += (quote if quote in ("'", '"') else "") + ")"
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
    """The innermost frame of the project itself: a task whose retries ran out ends in
    Celery's `raise_with_context`, a failed HTTP call in the client library; the group is
    named after the code that called them. All library frames: the innermost one."""
    frames = _FRAME.findall(traceback or "")
    if not frames:
        return ""
    own = [frame for frame in frames if not _LIBRARY.search(frame[0])]
    path, function = (own or frames)[-1]
    return f"{path.rsplit('/', 1)[-1]}:{function}"


# A KeyError's message is the key it did not find: data, not the fault. `lookup('k0')`,
# `lookup('k1')` and `lookup('zz')` failing in one function split into a group (and a
# new-failure alert) per key (a Django trial).
_KEY_ERRORS = frozenset({"KeyError"})


def fingerprint(exception: str | None, traceback: str | None) -> dict[str, str]:
    """The group key and what it is made of."""
    kind, message = split_exception(exception)
    pattern = normalise(message)
    if kind.rsplit(".", 1)[-1] in _KEY_ERRORS and pattern and " " not in pattern:
        pattern = "<key>"
    frame = innermost_frame(traceback)
    key = hashlib.sha1(f"{kind}|{pattern}|{frame}".encode()).hexdigest()[:16]
    return {"fingerprint": key, "exception_type": kind, "message": pattern, "frame": frame}
