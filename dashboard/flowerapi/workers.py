"""GET /api/workers: what workers answered to `inspect`, kept per process as Flower keeps it.

Flower inspects every worker when it starts and again only when a client asks for
`refresh`; between the two it serves what it has. Lookout does the same, filling the
cache on demand instead of at start-up: a request without `refresh` inspects only the
workers the history knows to be online that the cache lacks (a new worker appears
without anyone asking), so the usual call costs no broadcast at all. As in Flower, the
task lists (active, reserved, scheduled, revoked) are fetched only when one worker is
asked for: they can be huge. Broker trouble is a 503.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from lookout.core.celery_client import BrokerUnavailable
from lookout.core.config import redact_url
from lookout.core.inspector import Inspector
from lookout.dashboard.fleet.service import FleetService
from lookout.dashboard.web.errors import ApiError, broker_down

EVERY_WORKER = ("stats", "active_queues", "registered", "conf")
ONE_WORKER = EVERY_WORKER + ("scheduled", "active", "reserved", "revoked")
# (args, kwargs) of an inspect command, where Flower passes some.
CALL_ARGUMENTS = {"active": ((), {"safe": True}), "conf": ((), {"with_defaults": False})}
MAX_WORKERS = 1000  # workers remembered; the least recently answering are forgotten
# A worker that did not answer is not asked again, unprompted, for this long (seconds).
ASK_AGAIN_AFTER = 30.0


class WorkerCache:
    """Inspect replies by worker: {hostname: {command: reply, ..., "timestamp": t}}."""

    def __init__(self, inspector: Inspector, fleet: FleetService, clock=time.time):
        self.inspector = inspector
        self.fleet = fleet
        self.clock = clock
        self._workers: dict[str, dict[str, Any]] = {}
        self._asked: dict[str, float] = {}  # hostname -> when `_fill` last asked it
        self._lock = threading.Lock()

    def answer(self, refresh: bool, workername: str | None, status: bool) -> dict:
        """The body of GET /api/workers, in Flower's order of checks."""
        if refresh:
            self.inspect(workername)
        if status:
            return {w["hostname"]: self.fleet.presumed_online(w)
                    for w in self.fleet.list_workers()}
        if not refresh:
            self._fill(workername)
        with self._lock:
            if workername is None:
                return {name: dict(info) for name, info in self._workers.items()}
            if workername not in self._workers:
                raise ApiError(404, f"Unknown worker '{workername[:100]}'")
            return {workername: dict(self._workers[workername])}

    def active_queues(self) -> dict[str, list] | None:
        """hostname -> queues consumed, from the cache (None before any inspect)."""
        with self._lock:
            queues = {name: info["active_queues"] for name, info in self._workers.items()
                      if info.get("active_queues") is not None}
        return queues or None

    def inspect(self, workername: str | None = None, names: list[str] | None = None) -> None:
        """Ask the workers now (one, `names`, or every one) and keep what they answer."""
        destination = [workername] if workername else names
        commands = ONE_WORKER if workername else EVERY_WORKER
        calls = {command: (command, *CALL_ARGUMENTS.get(command, ((), {})))
                 for command in commands}
        try:
            # The inspector runs the calls side by side, each on its own connection.
            replies, _errors = self.inspector.run(calls, destination)
        except BrokerUnavailable as exc:
            raise broker_down(self.inspector.broker_url, exc) from None
        now = self.clock()
        with self._lock:
            for command, by_worker in replies.items():
                for hostname, reply in (by_worker or {}).items():
                    if reply is None or (isinstance(reply, dict) and "error" in reply
                                         and len(reply) == 1):
                        continue
                    info = self._workers.setdefault(hostname, {})
                    info[command] = _clean(command, reply)
                    info["timestamp"] = now
            self._forget_oldest()

    def _fill(self, workername: str | None) -> None:
        """Inspect the workers the history knows to be online that have no entry yet,
        unless they were asked lately and kept silent (each ask waits the full timeout)."""
        now = self.clock()
        with self._lock:
            skip = set(self._workers) | {name for name, at in self._asked.items()
                                         if now - at < ASK_AGAIN_AFTER}
        if workername is not None:
            wanted = [workername] if workername not in skip and \
                self.fleet.known_worker(workername) else []
        else:
            wanted = sorted(w["hostname"] for w in self.fleet.list_workers()
                            if w["status"] == "online" and w["hostname"] not in skip)
        if not wanted:
            return
        with self._lock:
            self._asked = {name: at for name, at in self._asked.items()
                           if now - at < ASK_AGAIN_AFTER}
            self._asked.update((name, now) for name in wanted)
        try:
            if workername is not None:
                self.inspect(workername)
            else:
                self.inspect(names=wanted)
        except ApiError:
            pass  # broker down: serve what the cache has, as Flower does without refresh

    def _forget_oldest(self) -> None:
        while len(self._workers) > MAX_WORKERS:
            oldest = min(self._workers, key=lambda name: self._workers[name]["timestamp"])
            del self._workers[oldest]


def _clean(command: str, reply: Any) -> Any:
    """As Flower keeps them, with no broker password in conf (Celery masks most already)."""
    if command == "stats" and isinstance(reply, dict):
        broker = (reply.get("consumer") or reply).get("broker")
        if isinstance(broker, dict):
            broker.pop("alternates", None)  # Flower drops it (URLs, unmasked by Celery)
    if command == "conf" and isinstance(reply, dict):
        return {k: v if not isinstance(v, str) or ":********@" in v else redact_url(v)
                for k, v in reply.items()}
    return reply
