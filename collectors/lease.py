"""A named job only one collector runs at a time: a row in `leases`, renewed by its holder
and taken over by another once it expires (its holder died or hung)."""
from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Callable

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from lookout.core.store.models import Lease

log = logging.getLogger(__name__)


class JobLease:
    """`owner` (the collector's name) leads the holder id, so /healthz can say which
    collector runs which job."""

    def __init__(self, engine: Engine, name: str, ttl: float, clock: Callable[[], float],
                 owner: str = "lookout"):
        self.engine, self.name, self.ttl, self.clock = engine, name, ttl, clock
        self.holder = (f"{owner[:40]}@{socket.gethostname()[:40]}:{os.getpid()}:"
                       f"{uuid.uuid4().hex[:6]}")

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
                if conn.execute(select(Lease.name).where(Lease.name == self.name)).first():
                    return False
                conn.execute(insert(Lease).values(name=self.name, holder=self.holder,
                                                  expires_at=now + self.ttl))
        except IntegrityError:  # another process inserted it first
            return False
        return True

    def release(self) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(Lease).where(Lease.name == self.name,
                                                 Lease.holder == self.holder))
        except Exception as exc:  # noqa: BLE001 - the lease expires anyway
            log.warning("could not release the %s lease: %s", self.name, exc)
