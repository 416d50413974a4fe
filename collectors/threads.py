"""Ending the collector's side-job threads (queue sampling, alerts, reconciling, status).

Each job is told to stop by an Event and joined; one that does not end in time is named
in the log, because it still holds the collector's engine: used after `Collector.stop`
disposed it, the engine opens a fresh pool whose connections nobody closes.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


def join_or_report(thread: threading.Thread | None, timeout: float) -> bool:
    """Wait up to `timeout` for `thread` (None: nothing to wait for); True when it ended."""
    if thread is None:
        return True
    thread.join(timeout)
    if thread.is_alive():
        log.error("thread %s did not stop within %.1fs", thread.name, timeout)
        return False
    return True
