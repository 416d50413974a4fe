"""worker_queues: each worker's last answer kept, replaced when it answers again."""
from __future__ import annotations

from sqlalchemy import select

from lookout.collectors import worker_queues
from lookout.core.store import db
from lookout.core.store.models import WorkerQueue
from lookout.dashboard.fleet.service import FleetService

NOW = 1_800_000_000.0
WEEK = 7 * 86400.0


def stored(engine):
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(
            select(WorkerQueue.hostname, WorkerQueue.queue, WorkerQueue.seen_at)))


def test_answers_replace_a_workers_queues_and_silence_keeps_its_last(database_url):
    engine = db.make_engine(database_url)
    try:
        worker_queues.record(engine, {
            "w1@h": [{"name": "celery"}, {"name": "exports"}],
            "w2@h": [{"name": "celery"}, {"name": None}, "junk"]}, NOW, WEEK)
        # w1 answers again without exports; w2 does not answer (dead): kept as it was.
        worker_queues.record(engine, {"w1@h": [{"name": "celery"}]}, NOW + 10, WEEK)
        assert stored(engine) == [("w1@h", "celery", NOW + 10), ("w2@h", "celery", NOW)]
        last = FleetService(engine).last_consumers(["celery", "exports", "nobody"])
        assert last == {"celery": [{"hostname": "w1@h", "seen_at": NOW + 10},
                                   {"hostname": "w2@h", "seen_at": NOW}]}
        # A week on, the dead worker's answer goes with it (LOOKOUT_WORKER_RETENTION).
        worker_queues.record(engine, {"w1@h": [{"name": "celery"}]}, NOW + WEEK + 5, WEEK)
        assert stored(engine) == [("w1@h", "celery", NOW + WEEK + 5)]
    finally:
        engine.dispose()
