"""A store outage in a background job's log: said once, then every few minutes, then its end.

Every background job of the collector (the status row each second, housekeeping, alert
evaluation, queue sampling, reconciliation, the live lease) meets the same outage, and
each used to log every failed attempt, most with a traceback: an idle collector wrote
775 lines in its first 20 s without a store (measured), burying the one line that says
what is wrong. Errors other than an unavailable store are still logged in full each time:
those are bugs, not outages.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from sqlalchemy.exc import ProgrammingError

from lookout.core.store.db import STORE_UNAVAILABLE, error_line

REPEAT_EVERY = 300.0  # seconds between "still unavailable" lines


UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE; SQLite says "no such table" as an
# OperationalError, which STORE_UNAVAILABLE covers


def is_outage(exc: BaseException) -> bool:
    """The store is unreachable, or reachable but not yet migrated: a collector started
    while its store was away upgrades the schema once it answers, and its jobs may ask
    for a table in between (seen in a test)."""
    if isinstance(exc, STORE_UNAVAILABLE):
        return True
    return (isinstance(exc, ProgrammingError)
            and getattr(getattr(exc, "orig", None), "sqlstate", None) == UNDEFINED_TABLE)


class OutageLog:
    """One per job: `failed(exc)` after an attempt raised, `succeeded()` after one did."""

    def __init__(self, log: logging.Logger, job: str,
                 clock: Callable[[], float] = time.monotonic):
        self.log, self.job, self.clock = log, job, clock
        self._since: float | None = None  # when the outage began, as this job saw it
        self._said = 0.0

    @property
    def in_outage(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        if not is_outage(exc):
            self.log.error("%s failed", self.job, exc_info=exc)
            return
        now = self.clock()
        if self._since is None:
            self._since = self._said = now
            self.log.warning("%s: store unavailable (%s); retrying, next report in %.0f s "
                             "if it lasts", self.job, error_line(exc), REPEAT_EVERY)
        elif now - self._said >= REPEAT_EVERY:
            self._said = now
            self.log.warning("%s: store still unavailable after %.0f s (%s)", self.job,
                             now - self._since, error_line(exc))

    def succeeded(self) -> None:
        if self._since is not None:
            self.log.info("%s: store answers again, after %.0f s", self.job,
                          self.clock() - self._since)
            self._since = None
