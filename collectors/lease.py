"""A named job only one collector runs at a time: a row in `leases`, renewed by its holder
and taken over by another once it expires (its holder died or hung), or at once by the
same collector restarted on the same machine when the process holding it is gone."""
from __future__ import annotations

import logging
import os
import uuid
from typing import Callable

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from lookout.collectors.local_process import other_live_process_here, this_host
from lookout.core.store.db import error_line
from lookout.core.store.models import Lease

log = logging.getLogger(__name__)


HOST_WIDTH = 40  # of the holder id: the collector's name (64 at most) leads it


class JobLease:
    """`owner` (the collector's name) leads the holder id, "<owner>@<host>:<pid>:<tag>",
    so /healthz can say which collector runs which job (whole: `lookout collectors
    forget` finds a collector's leases by it)."""

    def __init__(self, engine: Engine, name: str, ttl: float, clock: Callable[[], float],
                 owner: str = "lookout"):
        self.engine, self.name, self.ttl, self.clock = engine, name, ttl, clock
        self._prefix = f"{owner}@{this_host(HOST_WIDTH)}:"
        self.holder = f"{self._prefix}{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def acquire(self) -> bool:
        """Take or renew the lease; False while another live holder has it."""
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                if conn.execute(update(Lease).where(
                        Lease.name == self.name,
                        (Lease.holder == self.holder) | (Lease.expires_at < now))
                        .values(holder=self.holder, expires_at=now + self.ttl)).rowcount:
                    return True
                holder = conn.execute(select(Lease.holder)
                                      .where(Lease.name == self.name)).scalar()
                if holder is not None:
                    return self._take_from_dead_self(conn, holder, now)
                conn.execute(insert(Lease).values(name=self.name, holder=self.holder,
                                                  expires_at=now + self.ttl))
        except IntegrityError:  # another process inserted it first
            return False
        return True

    def _take_from_dead_self(self, conn: Connection, holder: str, now: float) -> bool:
        """Take the lease from an earlier process of this collector name on this machine
        that is gone: a collector restarted at once after a crash found its jobs (alerts,
        retention, queue sampling) done by nobody until the dead one's lease ran out, up
        to a minute (a trial). A live holder of the same name keeps it."""
        if not holder.startswith(self._prefix):
            return False
        pid = holder[len(self._prefix):].split(":", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            return False  # not an id of ours, or another lease object of this process
        if other_live_process_here(this_host(HOST_WIDTH), pid):
            return False
        log.info("taking the %s lease from %s: this collector's earlier process, gone",
                 self.name, holder)
        return bool(conn.execute(update(Lease).where(
            Lease.name == self.name, Lease.holder == holder)
            .values(holder=self.holder, expires_at=now + self.ttl)).rowcount)

    def release(self) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(Lease).where(Lease.name == self.name,
                                                 Lease.holder == self.holder))
        except Exception as exc:  # noqa: BLE001 - the lease expires anyway
            log.warning("could not release the %s lease (it runs out by itself): %s",
                        self.name, error_line(exc))
