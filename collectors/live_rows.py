"""Task rows for the live pages, folded from the decoded event stream, ahead of the store.

Pushing only what the writer committed makes a page as late as the write lag, which grows
under load (seconds at 10,000 events/s). So the live publisher also watches validated
events as the receiver decodes them and folds each into a recent copy of its task's row
with the writer's own merge (collectors.merge.fold). What it shows is what the store will
hold: only events that passed validation, each identity counted once.

A task first heard after this process started lacks what its earlier events said (name,
arguments): when the writer commits the stored row, its values fill those gaps
(`fill_from`), never overriding what newer events set.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from lookout.collectors import merge
from lookout.collectors.events import Event

SEEN_CAP = 100_000  # event identities remembered for deduplication (~15 MB)
ROWS_CAP = 20_000  # task rows kept to fold the next events into


class EarlyRows:
    """The recent task rows and event identities; not thread-safe (the publisher locks)."""

    def __init__(self, seen_cap: int = SEEN_CAP, rows_cap: int = ROWS_CAP):
        self.seen_cap, self.rows_cap = seen_cap, rows_cap
        self._seen: dict[tuple, None] = {}  # insertion-ordered: the oldest go first
        self._rows: dict[str, dict[str, Any]] = {}

    def fold(self, events: Iterable[Event]) -> tuple[list[dict[str, Any]], list[str]]:
        """Fold new task events in: (changed rows, the resulting state of each new event but
        a final transition its task already had, which the store does not count either)."""
        seen, rows = self._seen, self._rows
        by_task: dict[str, list[Event]] = {}
        states: list[str] = []
        finished: set[tuple[str | None, str]] = set()
        for event in events:
            if event.uuid is None or event.type not in merge.TRANSITIONS:
                continue
            key = (event.uuid, event.type, event.timestamp, event.hostname)
            if key in seen:
                continue  # a copy (a redelivery, or heard twice): the store drops it too
            seen[key] = None
            if len(seen) > self.seen_cap:
                del seen[next(iter(seen))]
            if not merge.final_repeat(event, rows, finished):  # counted as the store does
                states.append(merge.TRANSITIONS[event.type][0])
            by_task.setdefault(event.uuid, []).append(event)
        # One fold (one row copy) per task per message, as the writer does per batch: a
        # task.multi message often holds several events of one task.
        changed: dict[str, dict[str, Any]] = {}
        for uuid, task_events in by_task.items():
            rows[uuid] = changed[uuid] = merge.fold(rows.pop(uuid, None), task_events)
        while len(rows) > self.rows_cap:
            del rows[next(iter(rows))]
        return list(changed.values()), states

    def fill_from(self, stored: Mapping[str, Any]) -> dict[str, Any] | None:
        """Take a committed row's values where the live row knows nothing yet.

        Returns the row to push: the filled live row (newer than the stored one, which may
        come from an older batch), or the stored one for a task this process has not seen
        events of; None when the live row already knew everything the store did, so a
        commit does not push every row a second time, seconds late.
        """
        uuid = stored.get("uuid")
        if not uuid:
            return None
        row = self._rows.get(uuid)
        if row is None:
            row = self._rows[uuid] = dict(stored)
            return row
        gaps = [name for name, value in stored.items()
                if value is not None and row.get(name) is None]
        for name in gaps:
            row[name] = stored[name]
        return row if gaps else None
