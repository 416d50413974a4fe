"""Asks live workers what they are doing through Celery's remote `inspect` commands.

Each inspect call is a broadcast that waits up to `timeout` for replies, so calls run
concurrently, each on a short-lived daemon thread (at most `max_calls` at once), and the
request thread only waits on their futures with a deadline: a page asks for one worker
and gets whatever answered, plus a per-call error for what did not. Daemon threads, not
a pool, so a hung broker socket can never keep the process from exiting.
An unreachable broker is its own error (`BrokerUnavailable`) so the API can answer 503.
"""
from __future__ import annotations

import re
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from lookout.core.celery_client import BrokerUnavailable, PrivateCeleryApp
from lookout.core.config import redact_url

CALLS = ("stats", "active", "reserved", "scheduled", "registered", "active_queues", "conf")
# Task attributes `inspect registered` reports; limits are what operators look for.
TASK_INFO = ("rate_limit", "time_limit", "soft_time_limit", "acks_late", "max_retries")
_REGISTERED = re.compile(r"^(?P<name>\S+)(?: \[(?P<info>.*)\])?$")


class Inspector:
    """Runs inspect calls against the broker of `settings` with a bounded wait."""

    @classmethod
    def for_settings(cls, settings, **kwargs: Any) -> "Inspector":
        """The inspector of a deployment: its broker, reached the way its app does."""
        kwargs.setdefault("timeout", float(settings.extra.get("inspect_timeout", 1.5)))
        return cls(settings.broker_url, broker_conf=settings.broker_conf, **kwargs)

    def __init__(self, broker_url: str, timeout: float = 1.5, max_calls: int = 16,
                 connect_timeout: float = 2.0, broker_conf: dict[str, Any] | None = None):
        self.broker_url = broker_url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._slots = threading.BoundedSemaphore(max_calls)
        self._app = PrivateCeleryApp(broker_url, "lookout-inspector", connect_timeout,
                                     broker_conf)
        self._lock = threading.Lock()
        self._queues: tuple[float, dict | None] = (0.0, None)
        self._queues_refreshing = False

    @property
    def app(self):
        return self._app.get()

    def _submit(self, func, *args) -> Future:
        """Run `func` on a daemon thread; the future fails fast when all slots are busy."""
        future: Future = Future()
        if not self._slots.acquire(timeout=self.timeout):
            future.set_exception(RuntimeError("too many inspect calls in flight"))
            return future

        def target():
            future.set_running_or_notify_cancel()  # from now on cancel() cannot touch it
            try:
                future.set_result(func(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                future.set_exception(exc)
            finally:
                self._slots.release()

        threading.Thread(target=target, name=f"inspect-{args[0] if args else ''}",
                         daemon=True).start()
        return future

    def _call(self, command: str, destination: list[str] | None, args: tuple = (),
              kwargs: dict | None = None) -> Any:
        """One inspect command on its own connection (kombu connections are per thread)."""
        from kombu.exceptions import OperationalError

        try:
            with self.app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0.2,
                                       timeout=self.connect_timeout)
                inspect = self.app.control.inspect(destination=destination,
                                                   timeout=self.timeout, connection=conn)
                return getattr(inspect, command)(*args, **(kwargs or {}))
        except (OperationalError, OSError) as exc:
            raise BrokerUnavailable(
                f"broker {redact_url(self.broker_url)} unreachable: {exc}") from exc

    def run(self, calls: dict[str, tuple], destination: list[str] | None
            ) -> tuple[dict[str, Any], dict[str, str]]:
        """Run (command, args, kwargs) calls concurrently; a readable error per failure.
        The raw replies, for callers that shape them themselves (the Flower API)."""
        futures = {key: self._submit(self._call, command, destination, *rest)
                   for key, (command, *rest) in calls.items()}
        results: dict[str, Any] = {}
        errors: dict[str, str] = {}
        unavailable = None
        wait = self.timeout + self.connect_timeout * 2 + 1.0
        deadline = time.monotonic() + wait  # one deadline for all: they run side by side
        for key, future in futures.items():
            try:
                results[key] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except BrokerUnavailable as exc:
                unavailable = exc
                errors[key] = str(exc)
            except FutureTimeout:  # its thread ends by itself; its late answer goes nowhere
                errors[key] = f"no answer within {wait:.1f}s"
            except Exception as exc:  # noqa: BLE001 - report per call, keep the rest
                errors[key] = f"{type(exc).__name__}: {exc}"
        if unavailable is not None and not results:
            raise unavailable
        return results, errors

    def worker(self, hostname: str) -> dict[str, Any]:
        """Everything inspect can tell about one worker; missing replies become errors."""
        calls: dict[str, tuple] = {name: (name,) for name in CALLS}
        calls["registered"] = ("registered", TASK_INFO)
        calls["conf"] = ("conf", (), {"with_defaults": False})
        replies, errors = self.run(calls, [hostname])
        info = {}
        for name in CALLS:
            reply = (replies.get(name) or {}).get(hostname)
            if reply is None and name not in errors:
                errors[name] = (f"no reply from {hostname} within {self.timeout:g}s "
                                "(worker offline, busy, or not consuming control messages)")
            info[name] = reply
        return {
            "hostname": hostname,
            "responded": any(info[name] is not None for name in CALLS),
            "timeout": self.timeout,
            **summarise(info),
            "errors": errors,
        }

    def limits(self) -> dict[str, Any]:
        """The rate and time limits every answering worker applies now, per task name:
        what a limit set from Lookout (or anywhere) left in place. Broadcast, so it waits
        the whole timeout for workers that do not answer."""
        replies, errors = self.run({"registered": ("registered", TASK_INFO)}, None)
        answered = replies.get("registered") or {}
        limits = []
        for hostname, lines in sorted(answered.items()):
            for task in parse_registered(lines or []):
                kept = {k: task.get(k) for k in ("rate_limit", "time_limit", "soft_time_limit")}
                if any(kept.values()):
                    limits.append({"name": task["name"], "worker": hostname, **kept})
        return {"workers": sorted(answered), "timeout": self.timeout,
                "limits": sorted(limits, key=lambda t: (t["name"], t["worker"])),
                "errors": errors}

    def active_queues(self) -> dict[str, list[dict]]:
        """`inspect active_queues` across all workers: hostname -> queues."""
        replies, _ = self.run({"q": ("active_queues",)}, None)
        return replies.get("q") or {}

    def recent_active_queues(self, max_age: float = 15.0) -> dict[str, list[dict]] | None:
        """The last `active_queues` answer, refreshed in the background when stale.

        A broadcast to all workers always waits the full timeout, too slow for a page
        polled every few seconds; a stale answer (or None at first) is good enough there.
        """
        with self._lock:
            taken_at, value = self._queues
            stale = time.monotonic() - taken_at > max_age
            start = stale and not self._queues_refreshing
            if start:
                self._queues_refreshing = True
        if start:
            self._submit(self._refresh_queues, "active_queues")
        return value

    def _refresh_queues(self, _label: str) -> None:
        try:
            value = self.active_queues()
        except Exception:  # noqa: BLE001 - keep the old answer; retried when asked again
            value = None
        with self._lock:
            if value is not None:
                self._queues = (time.monotonic(), value)
            self._queues_refreshing = False


def parse_registered(lines: list[str]) -> list[dict[str, Any]]:
    """Turn 'name [rate_limit=10/m time_limit=30]' strings into dicts."""
    tasks = []
    for line in lines:
        match = _REGISTERED.match(str(line))
        if not match:
            tasks.append({"name": str(line)})
            continue
        entry: dict[str, Any] = {"name": match.group("name"), "rate_limit": None,
                                 "time_limit": None, "soft_time_limit": None}
        for pair in (match.group("info") or "").split():
            key, _, value = pair.partition("=")
            if key in TASK_INFO + ("exchange", "routing_key"):
                entry[key] = None if value == "None" else value
        tasks.append(entry)
    return tasks


def summarise(info: dict[str, Any]) -> dict[str, Any]:
    """Pick the parts the worker page shows first; keep the raw stats too."""
    stats = info.get("stats") or {}
    pool = stats.get("pool") or {}
    conf = info.get("conf")
    if isinstance(conf, dict):
        conf = {k: (redact_url(v) if isinstance(v, str) else v) for k, v in conf.items()}
    return {
        "pool": {
            "implementation": pool.get("implementation"),
            # Celery's "max-concurrency" is the start-up limit: a pool_grow or shrink
            # (or the autoscaler) changes the processes, not that number.
            "concurrency": (len(pool["processes"]) if isinstance(pool.get("processes"), list)
                            and pool["processes"] else pool.get("max-concurrency")),
            "processes": pool.get("processes"),
            "max_tasks_per_child": pool.get("max-tasks-per-child"),
        } if pool else None,
        "stats": stats or None,
        "active": info.get("active"),
        "reserved": info.get("reserved"),
        "scheduled": info.get("scheduled"),
        "registered": (parse_registered(info["registered"])
                       if info.get("registered") is not None else None),
        "queues": info.get("active_queues"),
        "conf": conf,
    }
