"""The collector's overflow: buffered events that do not fit in memory, kept on disk.

On Redis an event that is not taken off the connection when it arrives is gone (pub/sub
keeps nothing), so a collector whose database is slow or away must hold everything it
hears. Memory is bounded instead (`LOOKOUT_BACKLOG_MEMORY`): past the bound the buffer
appends chunks to this file, and the writer reads them back, oldest first, once memory is
drained. A stopping collector that cannot write everything in time appends what is left,
and the next start replays the file, so a SIGTERM loses nothing either.

RabbitMQ needs none of this: unacked messages stay in the broker, and the consumer's
prefetch already bounds what is held in memory.

The format is one JSON array per line, so a torn last line (power loss mid-write) costs
only that line:

    ["e", count, [[type, hostname, timestamp, local_received, clock, utcoffset, uuid,
                   fields], ...]]                      validated events
    ["r", count, body, base64?, content_type, content_encoding, local_received]
                                                       a message kept undecoded

One collector owns a file at a time (an exclusive `flock`); it is named after the
collector and its store.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from lookout.collectors.buffer import RawMessage
from lookout.collectors.events import Event

log = logging.getLogger(__name__)

ACCEPT_JSON = {"application/json"}  # the only content type the receiver accepts


class SpillBusy(RuntimeError):
    """Another running collector owns this spill file."""


def spill_path(folder: str | os.PathLike, collector_name: str, store: str = "") -> Path:
    """The spill file of a collector: one per name and store, in `folder`.

    The store's URL is in the name (hashed, its password never written anywhere) so two
    collectors of different stores on one machine, both named "default" (a demo beside a
    real one), do not contend for one file, while a restart finds its own again.
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in collector_name)
    tag = f"-{hashlib.sha256(store.encode()).hexdigest()[:10]}" if store else ""
    return Path(folder).expanduser() / f"spill-{safe or 'default'}{tag}.jsonl"


class SpillFile:
    """An append-only overflow file read back in order; not thread-safe (the buffer locks).

    `expand` turns replayed undecoded messages into events (the receiver's decoder).
    """

    def __init__(self, path: str | os.PathLike, expand: Callable[[RawMessage], list[Event]]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._expand = expand
        self._out = open(self.path, "ab")
        try:
            fcntl.flock(self._out, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._out.close()
            raise SpillBusy(f"{self.path} is in use by another collector: give each "
                            "collector on this machine its own name (--name or "
                            "LOOKOUT_COLLECTOR_NAME)") from None
        size = os.fstat(self._out.fileno()).st_size
        if size:
            with open(self.path, "rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":  # torn by a crash: end it, skip it on reading
                    self._out.write(b"\n")
                    self._out.flush()
        self._in = open(self.path, "rb")
        self.pending = self._count_existing()  # events written and not yet read back
        self.torn = 0  # unreadable lines skipped (a crash mid-write)

    def _count_existing(self) -> int:
        """Events left by an earlier run (replayed first); the count is in each line."""
        count = 0
        with open(self.path, "rb") as handle:
            for line in handle:
                try:
                    count += int(json.loads(line)[1])
                except (ValueError, IndexError, TypeError):
                    continue
        return count

    def append(self, item: Any, count: int) -> None:
        """Write one buffered chunk (a list of `Event`s or a `RawMessage`)."""
        if item.__class__ is RawMessage:
            body = item.body
            encoded = isinstance(body, (bytes, bytearray, memoryview))
            if encoded:
                body = base64.b64encode(bytes(body)).decode("ascii")
            record = ["r", count, body, encoded, item.content_type, item.content_encoding,
                      item.local_received]
        else:
            record = ["e", count, [list(event) for event in item]]
        self._out.write(json.dumps(record, separators=(",", ":")).encode("ascii") + b"\n")
        self.pending += count

    def read(self, max_events: int) -> list[tuple[Any, int]]:
        """Up to about `max_events` events' worth of chunks, oldest first, as (item, count)."""
        self._out.flush()
        chunks: list[tuple[Any, int]] = []
        taken = 0
        while taken < max_events:
            line = self._in.readline()
            if not line:
                break
            try:
                item, count = self._decode(json.loads(line))
            except (ValueError, IndexError, TypeError, KeyError) as exc:
                self.torn += 1
                log.error("skipped an unreadable line of %s: %s", self.path, exc)
                continue
            chunks.append((item, count))
            taken += count
        self.pending = max(0, self.pending - taken)
        if self.drained():
            self._out.truncate(0)
            self._in.seek(0)
            self.pending = 0
        return chunks

    def _decode(self, record: list) -> tuple[Any, int]:
        kind, count = record[0], int(record[1])
        if kind == "e":
            return [Event(*fields) for fields in record[2]], count
        body, encoded, content_type, content_encoding, received = record[2:7]
        if encoded:
            body = base64.b64decode(body)
        return RawMessage(body, content_type, content_encoding, ACCEPT_JSON, float(received),
                          count, self._expand), count

    def drained(self) -> bool:
        """True when everything written has been read back."""
        self._out.flush()
        return self._in.tell() >= os.fstat(self._out.fileno()).st_size

    def sync(self) -> None:
        """Make what was appended durable (at shutdown)."""
        self._out.flush()
        os.fsync(self._out.fileno())

    def close(self) -> None:
        """Release the file: an empty one is removed, a partly read one keeps its unread rest.

        Lines already read back are written to the store; replaying them would only make
        duplicates, so they are cut off before the next run sees the file.
        """
        try:
            self._out.flush()
            if self.drained():
                self.path.unlink(missing_ok=True)
            elif self._in.tell() > 0:
                rest = self.path.with_suffix(".rest")
                with open(rest, "wb") as handle:
                    while chunk := self._in.read(1 << 20):
                        handle.write(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(rest, self.path)
            else:
                os.fsync(self._out.fileno())
        finally:
            self._in.close()
            self._out.close()  # releases the lock
