"""Which label values /metrics' series may carry: a capped number per kind, kept fresh.

Each label kind (task name, hostname, queue, exception type) admits up to its cap of
distinct values (`metric_labels`); past the cap a new value counts as "other", so a
flood of generated task names cannot explode the series count. But a fleet whose
hostnames change with every deploy filled the hostname cap with retired workers for
good, and every new worker then counted as "other" (a trial). So each admitted value
remembers when it was last counted (`last_seen`, written at most once an hour), and
when the cap is full a value unseen for `EVICT_AFTER` gives its place to the new one,
its series going with it: what the new value counts is never mixed into the old one's.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from sqlalchemy import Connection, delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from lookout.core.store.models import MetricLabel, MetricTotal

OTHER = "other"
MAX_LABEL = 200  # characters kept of one label value (the labels column holds 1024)
EVICT_AFTER = 86400.0  # a value unseen this long may give its place when the cap is full
SEEN_EVERY = 3600.0  # last_seen is written at most this often per value
RELOAD_EVERY = 600.0  # collectors side by side: each reloads what the others admitted
# Kind -> the label names that carry its values (celery-exporter's and Flower's).
LABEL_NAMES = {"name": ("name", "task"), "hostname": ("hostname", "worker"),
               "queue": ("queue_name",), "exception": ("exception",)}


class LabelCaps:
    """Admitted label values per kind, loaded from the store on first use.

    Used by the writer thread only, inside the transaction that stores a batch:
    `load`, then `value` per label, then `save`; `forget` after a rollback."""

    def __init__(self, caps: dict[str, int], clock: Callable[[], float] = time.time,
                 evict_after: float = EVICT_AFTER):
        self.caps = caps
        self.clock = clock
        self.evict_after = evict_after
        self._admitted: dict[str, dict[str, float]] | None = None  # value -> last seen
        self._loaded_at = 0.0
        self._pending: list[dict[str, Any]] = []
        self._seen: set[tuple[str, str]] = set()
        self._evicted: list[tuple[str, str]] = []

    def load(self, conn: Connection) -> None:
        if self._admitted is None or self.clock() - self._loaded_at >= RELOAD_EVERY:
            self._loaded_at = self.clock()
            self._admitted = {kind: {} for kind in self.caps}
            for kind, value, seen in conn.execute(
                    select(MetricLabel.kind, MetricLabel.value, MetricLabel.last_seen)):
                self._admitted.setdefault(kind, {})[value] = seen or 0.0

    def value(self, kind: str, raw: Any) -> str:
        value = str(raw or "")[:MAX_LABEL]
        admitted = self._admitted[kind]
        now = self.clock()
        if value in admitted:
            if now - admitted[value] >= SEEN_EVERY:
                admitted[value] = now
                self._seen.add((kind, value))
            return value
        if len(admitted) >= self.caps[kind] and not self._evict(kind, admitted, now):
            return OTHER
        admitted[value] = now
        self._pending.append({"kind": kind, "value": value, "last_seen": now})
        return value

    def _evict(self, kind: str, admitted: dict[str, float], now: float) -> bool:
        """Free the place of the value seen longest ago, if unseen for evict_after."""
        oldest = min(admitted, key=admitted.__getitem__)
        if now - admitted[oldest] < self.evict_after:
            return False
        del admitted[oldest]
        self._seen.discard((kind, oldest))
        self._evicted.append((kind, oldest))
        return True

    def save(self, conn: Connection) -> None:
        """Write what this batch admitted, saw and evicted (in its transaction)."""
        table = MetricLabel.__table__
        for kind, value in self._evicted:
            conn.execute(delete(table).where(table.c.kind == kind, table.c.value == value))
            fragments = [f"{json.dumps(name)}:{json.dumps(value)}"
                         for name in LABEL_NAMES.get(kind, (kind,))]
            conn.execute(delete(MetricTotal).where(or_(*(
                MetricTotal.labels.contains(f, autoescape=True) for f in fragments))))
        if self._pending:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(dialect.insert(table).on_conflict_do_nothing(), self._pending)
        if self._seen:
            conn.execute(update(table).where(tuple_(table.c.kind, table.c.value).in_(
                sorted(self._seen))).values(last_seen=self.clock()))
        self._pending, self._seen, self._evicted = [], set(), []

    def forget(self) -> None:
        """After a rolled-back batch: reload from the store next time."""
        self._admitted, self._pending, self._seen, self._evicted = None, [], set(), []
