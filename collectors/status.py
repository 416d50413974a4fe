"""The collector's heartbeat in the database: one `collector_status` row, rewritten every second.

Web processes answer /healthz from this row alone, so they need no link to the collector
process; a row whose `updated_at` stops moving means the collector itself is gone. It runs
on a thread of its own so that a slow batch commit never delays it by much, and a last
row with `connected` false is written at shutdown, saying `stopped` when the stop was
asked for (SIGTERM, Ctrl-C): /healthz then lists it as stopped rather than down.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from lookout.collectors.buffer import EventBuffer
from lookout.collectors.live_rates import parse_points
from lookout.collectors.local_process import other_live_process_here
from lookout.collectors.outage_log import OutageLog
from lookout.collectors.stats import CollectorStats
from lookout.collectors.threads import join_or_report
from lookout.core.config import Settings, redact_url
from lookout.core.store.models import CollectorStatus

log = logging.getLogger(__name__)

RATE_WINDOW = 5.0  # seconds over which events_per_sec is averaged
CLASH_FORGOTTEN_AFTER = 60.0  # a name shared no longer once the other is silent this long


LIVE_ROW = 15.0  # a status row written this recently belongs to a running collector


class NameInUse(RuntimeError):
    """Another live process on this machine runs a collector of this name on this store."""


def ensure_name_free(engine: Engine, name: str) -> None:
    """Refuse to start a second collector of one name on one machine and store.

    The spill file's lock refused it only with a spill file (LOOKOUT_BACKLOG_MEMORY > 0)
    in the same data folder; without one the two overwrote each other's status row and
    passed the live push between them every few seconds (a trial). The name's row tells
    which process writes it; that process alive and writing means the name is taken. A
    store that cannot be read is no reason not to collect: the row's checks warn later.
    """
    try:
        with engine.connect() as conn:
            row = conn.execute(select(CollectorStatus.updated_at, CollectorStatus.stats)
                               .where(CollectorStatus.name == name)).first()
        instance = str(json.loads(row.stats or "{}").get("instance") or "") if row else ""
    except Exception:  # noqa: BLE001 - store away, no table yet, or a row no Lookout wrote
        return
    host, _, rest = instance.partition(":")  # "<host>:<pid>:<tag>" (StatusReporter)
    pid = rest.partition(":")[0]
    if (not instance or time.time() - float(row.updated_at or 0.0) > LIVE_ROW
            or not other_live_process_here(host, pid)):
        return
    raise NameInUse(f"collector name {name!r} is in use by another collector on this "
                    f"machine (process {pid}), writing the same store: "
                    "give each collector its own name (--name or LOOKOUT_COLLECTOR_NAME)")


def warn_sqlite_neighbours(engine: Engine, name: str) -> None:
    """Say so when another collector is writing the same SQLite store: it works (a trial
    stored every task) but SQLite takes one writer at a time, so the two wait for each
    other's commits; collectors side by side are for PostgreSQL (README)."""
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            others = conn.execute(select(CollectorStatus.name).where(
                CollectorStatus.name != name, CollectorStatus.connected.is_(True),
                CollectorStatus.updated_at >= time.time() - LIVE_ROW)).scalars().all()
    except Exception:  # noqa: BLE001 - no table yet, or the store away: nothing to say
        return
    if others:
        log.warning("collector(s) %s also write this SQLite store: SQLite takes one writer "
                    "at a time, so collectors side by side wait for each other; use "
                    "PostgreSQL for that", ", ".join(sorted(others)[:5]))


class StatusReporter:
    """Upsert this collector's status row every `interval` seconds until stopped."""

    def __init__(self, engine: Engine, settings: Settings, stats: CollectorStats,
                 buffer: EventBuffer, interval: float = 1.0):
        self.engine = engine
        self.settings = settings
        self.stats = stats
        self.buffer = buffer
        self.interval = interval
        self._samples: deque[tuple[float, int]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped_on_request = False
        self._carried = False  # lifetime totals read from the last row (carry_over)
        self._outage = OutageLog(log, "collector status row")
        # Which process writes the row: two collectors given one name (the default,
        # "default", on two hosts) would overwrite each other's row without a word.
        self.instance = f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._clash: str | None = None  # the other process's instance, once seen
        self._clash_seen = 0.0

    def start(self) -> "StatusReporter":
        self._carried = self.carry_over()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lookout-status", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0, asked: bool = False) -> None:
        """Stop the thread, then write the final row (the caller says we are offline);
        `asked`: an operator stopped the collector, it did not fail."""
        self._stop.set()
        self.stats.status_due.set()  # wake it now
        if join_or_report(self._thread, timeout):
            self._thread = None
        self._stopped_on_request = self._stopped_on_request or asked
        self._write_quietly()

    def stopping_on_request(self) -> None:
        """Every row from now on says `stopped`. /healthz believes it only of a row that
        is no longer connected, so the collector stays "up" while it flushes, and its
        receiver's disconnect (written at once) reads as stopped, not as "disconnected
        from broker": a rolling restart must not make /healthz unhealthy, even briefly."""
        self._stopped_on_request = True

    def carry_over(self) -> bool:
        """Continue the lifetime counters of this collector name's last row. False when
        the store could not be read: tried again before each write, as writing totals
        that start at 0 over the row would lose them (a start during a store outage)."""
        try:
            with self.engine.connect() as conn:
                text = conn.execute(select(CollectorStatus.stats).where(
                    CollectorStatus.name == self.settings.collector_name)).scalar()
        except Exception as exc:  # noqa: BLE001 - store away, or no table yet
            # Asked again before each status write: the outage is logged once.
            self._outage.failed(exc)
            return False
        try:
            last = json.loads(text or "{}")
            lifetime, points = last.get("lifetime"), last.get("live_points")
        except (ValueError, AttributeError):  # a row no Lookout wrote: start at 0
            lifetime = points = None
        if isinstance(lifetime, dict):
            self.stats.baseline = lifetime
        if self.stats.live_rates is not None:  # the chart keeps this name's last minute
            self.stats.live_rates.resume(parse_points(points))
        return True

    def _run(self) -> None:
        """Every `interval`, and at once when the connection state changes."""
        due = self.stats.status_due
        while not self._stop.is_set():
            due.clear()
            self._write_quietly()
            due.wait(self.interval)

    def _write_quietly(self) -> None:
        try:
            if not self._carried:
                self._carried = self.carry_over()
                if not self._carried:
                    return
            self.write()
        except Exception as exc:  # noqa: BLE001 - a database outage must not stop us
            self._outage.failed(exc)
        else:
            self._outage.succeeded()

    def events_per_sec(self, now: float) -> float:
        """Received events per second over the last few seconds."""
        samples = self._samples
        samples.append((now, self.stats.received))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()
        first_time, first_count = samples[0]
        if now - first_time <= 0:
            return 0.0
        return round((self.stats.received - first_count) / (now - first_time), 2)

    def row(self) -> dict:
        """The status row as column values."""
        stats = self.stats
        now = time.time()
        payload = stats.snapshot()
        payload.update(events_per_sec=self.events_per_sec(now),
                       buffer_pending=len(self.buffer),
                       buffer_high_water=self.buffer.high_water,
                       buffer_memory_mb=round(self.buffer.held_bytes / (1 << 20), 1),
                       buffer_spilled=self.buffer.spill_pending)
        if self._stopped_on_request:
            payload["stopped"] = True
        payload["instance"] = self.instance
        if self._clash:
            payload["name_shared_with"] = self._clash
        return {
            "name": self.settings.collector_name,
            "broker": redact_url(self.settings.broker_url)[:255],
            "connected": bool(stats.connected),
            "connected_since": stats.connected_since if stats.connected else None,
            "disconnected_since": None if stats.connected else stats.disconnected_since,
            "last_event_at": stats.last_event_at,
            "started_at": stats.started_at,
            "updated_at": now,
            "stats": json.dumps(payload, default=str),
        }

    def write(self) -> None:
        """Insert or update the row in one statement (both dialects support ON CONFLICT)."""
        values = self.row()
        dialect = self.engine.dialect.name
        module = postgresql if dialect == "postgresql" else sqlite
        table = CollectorStatus.__table__
        statement = module.insert(table).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={k: v for k, v in values.items() if k != "name"})
        with self.engine.begin() as conn:
            self._check_name(conn.execute(select(CollectorStatus.updated_at,
                                                 CollectorStatus.stats).where(
                table.c.name == values["name"])).first())
            conn.execute(statement)

    def _check_name(self, current) -> None:
        """Say so, once, when another process has written this name's row since we
        started: the row then flips between two collectors, and /healthz would judge a
        blend of both. The next rows carry the other's identity (`name_shared_with`)."""
        if current is None or current.updated_at < self.stats.started_at:
            return
        try:
            other = json.loads(current.stats or "{}").get("instance")
        except (ValueError, AttributeError):
            return
        now = time.time()
        if other == self.instance:  # nobody else wrote since our last row
            if self._clash and now - self._clash_seen > CLASH_FORGOTTEN_AFTER:
                log.info("collector name %r: the other process (%s) has not written for "
                         "%.0f s", self.settings.collector_name, self._clash,
                         CLASH_FORGOTTEN_AFTER)
                self._clash = None
            return
        if not other:
            return
        self._clash_seen = now
        if other != self._clash:
            self._clash = str(other)[:120]
            log.error("collector name %r is also used by another process (%s) writing this "
                      "store: each overwrites the other's status; give each collector its "
                      "own --name", self.settings.collector_name, self._clash)
