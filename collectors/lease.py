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

from lookout.core.store.db import error_line
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

    def take_over_from_earlier_self(self) -> bool:
        """Take the lease from an earlier process of this collector name on this machine.

        A collector restarted after a crash finds its predecessor's lease still running;
        one process per collector name and machine is all there can be (the spill file's
        lock sees to that), so that holder is dead and waiting out its expiry is pointless.
        """
        prefix = self.holder.rsplit(":", 2)[0] + ":"  # "owner@host:"
        now = self.clock()
        with self.engine.begin() as conn:
            holder = conn.execute(select(Lease.holder).where(Lease.name == self.name)).scalar()
            if holder is None or holder == self.holder or not holder.startswith(prefix):
                return False
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
