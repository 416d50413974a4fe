"""Pushes schedule health to live pages when it changes, which needs no Celery event.

An entry turns `missed` because time passed, not because anything arrived, so the web
process itself re-assesses every WATCH_EVERY seconds and emits "schedules" (counts and
the entries whose status changed) to the schedules and overview rooms. It starts with the
first live connection and runs once per process. Each round also records the statuses
in the store (schedule_status), where the collector's missed_schedule alert rule reads
them.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)
WATCH_EVERY = 5.0


class ScheduleWatcher:
    def __init__(self, service, emit: Callable[[dict[str, Any]], None]):
        self.service = service
        self.emit = emit
        self._last: dict[str, str] | None = None
        self._lock = threading.Lock()
        self._started = False

    def check(self) -> dict[str, Any] | None:
        """One round: the payload emitted, or None when nothing changed."""
        try:
            data = self.service.overview()
        except Exception:  # noqa: BLE001 - a source down must not stop the watcher
            log.exception("schedule health check failed")
            return None
        statuses = {f"{i['source']}/{i['name']}": i["health"]["status"] for i in data["items"]}
        self._record(data["items"])
        if statuses == self._last:
            return None
        previous, self._last = self._last or {}, statuses
        payload = {"counts": data.get("counts", {}),
                   "changed": {k: v for k, v in statuses.items() if previous.get(k) != v},
                   "removed": sorted(set(previous) - set(statuses))}
        self.emit(payload)
        return payload

    def _record(self, items: list[dict[str, Any]]) -> None:
        """Each entry's status for the collector's missed_schedule alert rule."""
        try:
            self.service.record_statuses(items)
        except Exception:  # noqa: BLE001 - a store outage: the next round writes again
            log.exception("could not record schedule statuses")

    def start(self, app, start_task: Callable, sleep: Callable) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True

        def loop():
            while True:
                with app.app_context():
                    self.check()
                sleep(WATCH_EVERY)
        start_task(loop)
