"""Worker rows from worker-online/heartbeat/offline events, one write per host per batch.

Liveness is judged from the collector's receive time (`local_received`), never from the
worker's clock, which may be skewed: the newest received event of a host decides whether
it is online and supplies its figures (active, processed, loadavg, ...).
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from sqlalchemy import Connection, Table

from lookout.collectors.events import Event
from lookout.collectors.sql_rows import select_in, write_rows
from lookout.core.store.models import Worker

WORKERS: Table = Worker.__table__
_TEXT_LIMIT = 64  # sw_* and loadavg columns are String(64)


def coalesce(events: Iterable[Event]) -> dict[str, dict[str, Any]]:
    """One row update per hostname: newer events' figures over older ones'."""
    rows: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: e.local_received):
        row = rows.get(event.hostname)
        if row is None:
            rows[event.hostname] = _row(event, event.local_received)
        else:
            row.update(_row(event, row["first_seen"]))
    return rows


def _row(event: Event, first_seen: float) -> dict[str, Any]:
    fields = event.fields
    row: dict[str, Any] = {
        "hostname": event.hostname, "online": event.type != "worker-offline",
        "first_seen": first_seen, "last_heartbeat": event.local_received,
        "last_event_ts": event.timestamp, "utcoffset": event.utcoffset,
    }
    if event.type == "worker-online":
        row["online_since"] = event.local_received
    for name in ("freq", "active", "processed", "pid"):
        if name in fields:
            row[name] = fields[name]
    for name in ("sw_ident", "sw_ver", "sw_sys"):
        if name in fields:
            row[name] = fields[name][:_TEXT_LIMIT]
    if "loadavg" in fields:
        row["loadavg"] = json.dumps(fields["loadavg"])[:_TEXT_LIMIT]
    return row


def save_workers(conn: Connection, updates: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Upsert coalesced worker rows; an older update never overwrites a newer row."""
    if not updates:
        return []
    existing = {row["hostname"]: row
                for row in select_in(conn, WORKERS, WORKERS.c.hostname, sorted(updates))}
    inserts, changed = [], []
    for host, row in sorted(updates.items()):  # one lock order for every writer
        old = existing.get(host)
        if old is None:
            # online_since stays unknown unless this batch saw its worker-online: a
            # worker first heard mid-life may hold tasks started long before.
            inserts.append({**dict.fromkeys(WORKERS.c.keys()), "freq": 2.0, **row})
            continue
        merged = dict(old)
        merged["first_seen"] = min(old["first_seen"], row["first_seen"])
        if row["last_heartbeat"] >= old["last_heartbeat"]:
            merged.update({k: v for k, v in row.items() if k != "first_seen"})
            restarted = (not old["online"] and row["online"]) or (
                old["pid"] is not None and row.get("pid") not in (None, old["pid"]))
            # (an offline worker heard again, or a new pid: it restarted)
            if restarted and "online_since" not in row:  # its worker-online was missed
                merged["online_since"] = row["last_heartbeat"]
        # The latest worker-online wins however late its batch comes (collectors side by
        # side, or a redelivered batch): max() does not depend on the order.
        since = row.get("online_since")
        if since is not None and (old["online_since"] is None or since > old["online_since"]):
            merged["online_since"] = max(since, merged["online_since"] or since)
        if merged != old:
            changed.append(merged)
    write_rows(conn, WORKERS, ("hostname",), inserts, changed)
    return inserts + changed
