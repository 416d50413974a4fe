"""Health of the whole pipeline as /healthz reports it, read from collector_status rows.

Each collector rewrites its row every second, so a web process on another host can judge
it: a row not updated for STALE_AFTER seconds means the collector is gone (crashed or
stuck), whatever its last `connected` flag said. One stopped on request (SIGTERM, Ctrl-C)
wrote `stopped` in its last row: it is listed as stopped, not counted as a problem, so
moving from `lookout run` to separate collectors, or retiring one of a pair, needs no
cleanup. At least one collector must be running.

A collector that is connected but has heard nothing for QUIET_AFTER seconds (workers with
events on send a heartbeat every 2 s) is healthy as far as Lookout goes, yet almost always
means a mistake an SRE should see at once: the wrong broker (or virtual host, or database
number), or workers started without `-E`. That is a warning: status "warning", still 200.

With collector and web apart, live updates cross a message queue (Redis pub/sub) that
drops what it cannot deliver without a word. The web process asks it directly (a probe)
and each collector reports what it found; either one failing to reach it is a problem:
every live page is frozen, even though collecting goes on.
"""
from __future__ import annotations

import json
import time

from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from lookout.core.store.models import Alert, CollectorStatus, Lease
from lookout.core.trouble import STATUS_STALE_AFTER

statuses = CollectorStatus.__table__

STALE_AFTER = STATUS_STALE_AFTER  # one age for /healthz and lost tasks (core.trouble)
QUIET_AFTER = 180.0
MESSAGE_QUEUE_DOWN = ("message queue unreachable from {side}: live updates stopped "
                      "({error})")
# The web's probe of the queue is named after the live channel, named after the store.
CHANNEL_UNKNOWN = "live channel not known yet: the store has not answered since the start"
QUIET_HINT = ("connected, but no worker has been heard for {minutes} minutes: wrong broker, "
              "or workers without events? (start them with -E)")


class HealthCheck:
    def __init__(self, engine: Engine, clock=time.time, quiet_after: float = QUIET_AFTER,
                 message_queue=None):
        self.engine = engine
        self.clock = clock
        self.quiet_after = quiet_after
        # A MessageQueueProbe when LOOKOUT_MESSAGE_QUEUE is on Redis (create_app), or None.
        self.message_queue = message_queue

    def store_answers(self) -> bool:
        """Whether the store answers `SELECT 1` (the web's readiness)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def check(self) -> dict:
        """The /healthz report: status ok|warning|degraded|down, healthy, database,
        collectors, problems, warnings.

        Healthy means the database answers and there is at least one collector, every one
        of them fresh and connected to its broker; warnings do not make it unhealthy.
        """
        now = self.clock()
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                rows = conn.execute(select(statuses).order_by(statuses.c.name)).mappings().all()
                leases = conn.execute(select(Lease).order_by(Lease.name)).all()
                # Every page shows it (a nav badge): a firing alert was visible only on
                # the Alerts page (an on-call trial).
                firing = conn.scalar(select(func.count()).select_from(Alert).where(
                    Alert.status == "firing"))
        except SQLAlchemyError as exc:
            return self.store_down(exc, self._queue(store_answers=False))
        queue = self._queue()
        collectors = [_collector(row, now, self.quiet_after) for row in rows]
        problems = [f"collector {c['name']}: {c['problem']}" for c in collectors if c["problem"]]
        warnings = [f"collector {c['name']}: {c['warning']}" for c in collectors if c["warning"]]
        if not collectors:
            problems.append("no collector has reported yet")
        elif not problems and all(c["stopped"] for c in collectors):
            problems.append("no collector is running (every one was stopped)")
        problems += _queue_problems(queue, collectors)
        healthy = not problems
        status = "degraded" if problems else ("warning" if warnings else "ok")
        return {"status": status, "healthy": healthy, "time": now, "database": {"ok": True},
                "message_queue": queue, "collectors": collectors, "jobs": _jobs(leases, now),
                "stale_after": STALE_AFTER, "alerts_firing": firing, "problems": problems,
                "warnings": warnings}

    def store_down(self, exc: Exception, queue: dict | None = None) -> dict:
        """The report while the store does not answer: status down, the database named."""
        return {"status": "down", "healthy": False, "time": self.clock(),
                "database": {"ok": False, "error": type(exc).__name__},
                "message_queue": queue, "collectors": [],
                "problems": ["database unreachable", *_queue_problems(queue, [])]}

    def _queue(self, store_answers: bool = True) -> dict | None:
        """The message queue as this web process finds it, or None without one.

        Its probe is made once the live channel is known (collectors/live_channel.py OnChannel);
        with the store just found down, asking for the channel would only wait again.
        """
        probe = self.message_queue
        if probe is None:
            return None
        unknown = {"ok": None, "subscribers": None, "error": CHANNEL_UNKNOWN}
        if not store_answers and not getattr(probe, "made", True):
            return unknown
        try:
            return probe.check()
        except SQLAlchemyError:
            return unknown

    def forget(self, name: str) -> None:
        """Remove a collector that will not come back (its row keeps /healthz at 503),
        and free the jobs its leases still hold, so another collector takes them at once.

        Refused while it still reports: it would write its row again within a second.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            updated = conn.execute(select(statuses.c.updated_at)
                                   .where(statuses.c.name == name)).scalar()
            if updated is None:
                raise LookupError(f"no collector named {name!r} has reported to this store")
            if now - updated <= STALE_AFTER:
                age = max(0.0, now - updated)
                raise ValueError(
                    f"collector {name!r} reported {age:.0f}s ago: it is running; stop it "
                    f"first (if it was just killed, try again in {STALE_AFTER - age + 1:.0f}s, "
                    f"once its last report is over {STALE_AFTER:.0f}s old)")
            conn.execute(statuses.delete().where(statuses.c.name == name))
            # Holders are "<name>@<host>:<pid>:<tag>" (collectors.lease.JobLease).
            conn.execute(Lease.__table__.delete().where(Lease.holder.startswith(
                name + "@", autoescape=True)))


def _queue_problems(queue: dict | None, collectors: list[dict]) -> list[str]:
    """The message queue as this web process and each running collector found it."""
    problems = []
    if queue is not None and queue["ok"] is False:
        problems.append(MESSAGE_QUEUE_DOWN.format(side="this web process",
                                                  error=queue["error"]))
    for c in collectors:
        if c["up"] and c["live"] and c["live"].get("ok") is False:
            problems.append(f"collector {c['name']}: " + MESSAGE_QUEUE_DOWN.format(
                side="it", error=c["live"].get("error")))
    return problems


def _quiet_warning(row, now: float, quiet_after: float) -> str | None:
    """The warning for a collector connected for `quiet_after` without hearing anything."""
    if not row["connected"] or row["connected_since"] is None:
        return None
    heard = row["last_event_at"]
    quiet_since = max(row["connected_since"], heard or 0.0)
    if now - quiet_since < quiet_after:
        return None
    return QUIET_HINT.format(minutes=f"{(now - quiet_since) / 60:.0f}")


def _jobs(leases, now: float) -> list[dict]:
    """Which collector runs each singleton job (retention, queue sampling, alerts...).

    A lease past its expiry has no live holder: the next collector to try takes it.
    """
    return [{"job": lease.name, "collector": lease.holder.split("@", 1)[0],
             "holder": lease.holder, "held": lease.expires_at > now,
             "expires_in": round(lease.expires_at - now, 1)} for lease in leases]


def _name_warning(stats: dict) -> str | None:
    """Two collectors writing under one name overwrite each other's status row."""
    other = stats.get("name_shared_with")
    if other:
        return (f"another collector uses this name ({other}): their reports overwrite each "
                "other; give each its own --name")
    return None


def _loss_warning(stats: dict) -> str | None:
    """Events lost since the collector started, or a backlog waiting on disk."""
    dropped = stats.get("dropped") or 0
    if dropped:
        return f"{dropped} events lost since this collector started (see its log)"
    spilled = stats.get("buffer_spilled") or 0
    if spilled:
        return (f"{spilled} events waiting in the spill file: the store is behind "
                "(slow or unreachable)")
    return None


def _collector(row, now: float, quiet_after: float) -> dict:
    stats = _stats(row["stats"])
    status_age = max(0.0, now - row["updated_at"])
    uptime = max(0.0, row["updated_at"] - row["started_at"])
    stale = status_age > STALE_AFTER
    # Its last row said so: stopped at once, not "disconnected" until the row goes stale.
    stopped = bool(stats.get("stopped")) and not row["connected"]
    if stopped:
        problem = None
    elif stale:
        problem = (f"status not updated for {status_age:.0f}s (killed, hung, or cut off from "
                   f"the store; one that will not come back: lookout collectors forget "
                   f"{row['name']})")
    elif not row["connected"]:
        # The broker's own words: "disconnected" alone misled when the broker answered
        # and refused the collector's queue (PRECONDITION_FAILED: a trial).
        error = str(stats.get("last_error") or "")[:200]
        problem = "disconnected from broker" + (f": {error}" if error else "")
    else:
        problem = None
    received = stats.get("received")
    warning = None if problem or stopped else (_name_warning(stats) or _loss_warning(stats)
                                               or _quiet_warning(row, now, quiet_after))
    return {
        "name": row["name"],
        "broker": row["broker"],
        "up": problem is None and not stopped,
        "stopped": stopped,
        "problem": problem,
        "warning": warning,
        "connected": bool(row["connected"]) and not stale,
        "connected_since": row["connected_since"],
        "disconnected_since": row["disconnected_since"],
        "disconnected_for": (round(now - row["disconnected_since"], 3)
                             if row["disconnected_since"] and not row["connected"] else None),
        "stale": stale,
        "status_age": round(status_age, 3),
        "last_event_at": row["last_event_at"],
        "last_event_age": (round(now - row["last_event_at"], 3)
                           if row["last_event_at"] is not None else None),
        # The collector averages its rate over the last few seconds (collectors/status.py);
        # a dead or stopped one's last rate is not a rate now.
        "events_per_second": None if stale or stopped else stats.get("events_per_sec"),
        "events_per_second_avg": (round(received / uptime, 3)
                                  if isinstance(received, (int, float)) and uptime else None),
        "received": received,
        "stored": stats.get("stored"),
        # Final events read from the result backend, stored without being received.
        "reconciled": stats.get("reconciled", 0),
        "rejected": stats.get("rejected", 0),
        "rejected_by_reason": stats.get("rejected_by_reason", {}),
        "dropped": stats.get("dropped", 0),
        "duplicates": stats.get("duplicates"),
        "write_lag": stats.get("write_lag"),
        "buffer_pending": stats.get("buffer_pending"),
        "buffer_memory_mb": stats.get("buffer_memory_mb"),
        "buffer_spilled": stats.get("buffer_spilled", 0),
        "last_error": stats.get("last_error"),
        "last_write_error": stats.get("last_write_error"),
        # The message queue to web processes as this collector found it, or None.
        "live": stats.get("live") if isinstance(stats.get("live"), dict) else None,
    }


def _stats(raw: str | None) -> dict:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
