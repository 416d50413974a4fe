"""JobLease: one holder at a time; a restarted collector takes its dead self's jobs."""
from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import insert, select

from lookout.collectors.lease import HOST_WIDTH, JobLease
from lookout.collectors.local_process import this_host
from lookout.core.store import db
from lookout.core.store.models import Lease


def holder(engine, name):
    with engine.connect() as conn:
        return conn.execute(select(Lease.holder).where(Lease.name == name)).scalar()


def plant(engine, name, owner, pid):
    """A lease as another process of `owner` on this machine left it, far from expiry."""
    planted = f"{owner}@{this_host(HOST_WIDTH)}:{pid}:abcdef"
    with engine.begin() as conn:
        conn.execute(insert(Lease).values(name=name, holder=planted,
                                          expires_at=time.time() + 600))
    return planted


def test_a_restarted_collector_takes_its_dead_predecessors_jobs_at_once(sqlite_url):
    """SIGKILLed and restarted at once, a collector found alerts, retention and queue
    sampling done by nobody until the dead one's leases ran out (up to a minute)."""
    engine = db.make_engine(sqlite_url)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process now
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        plant(engine, "alerts", "colA", dead.pid)
        live_one = plant(engine, "retention", "colA", alive.pid)
        plant(engine, "queues", "colB", dead.pid)
        restarted = [JobLease(engine, job, 30, time.time, "colA")
                     for job in ("alerts", "retention", "queues")]
        assert [lease.acquire() for lease in restarted] == [True, False, False]
        assert holder(engine, "alerts") == restarted[0].holder
        assert holder(engine, "retention") == live_one  # a live colA keeps its job
        # colB's dead process is not colA's to replace: it expires as before.
    finally:
        alive.kill()
        alive.wait()
        engine.dispose()


def test_a_long_collector_name_stays_whole_in_the_holder(sqlite_url):
    """Cut to 40 characters, the holder hid which collector ran the job, and `lookout
    collectors forget NAME` (which matches "NAME@") left its leases behind."""
    engine = db.make_engine(sqlite_url)
    name = "collector-" + "x" * 54  # 64 characters, the most a name may have
    try:
        lease = JobLease(engine, "alerts", 30, time.time, name)
        assert lease.acquire()
        assert holder(engine, "alerts").startswith(name + "@")
        assert len(lease.holder) <= Lease.__table__.c.holder.type.length
    finally:
        engine.dispose()
