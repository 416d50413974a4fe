"""The queues each worker last said it consumes, kept in `worker_queues`.

The queue sampler asks the workers (`inspect active_queues`) at every sample anyway; a
worker that answers has its list replaced, one that does not (dead, busy, cut off) keeps
its last one. So a queue nobody consumes any more still names the worker that did: the
one to bring back (an on-call trial could not tell). Rows of workers not heard from for
`keep` seconds go, as the workers' own rows do (LOOKOUT_WORKER_RETENTION).
"""
from __future__ import annotations

import logging

from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import IntegrityError

from lookout.collectors.sql_rows import chunks
from lookout.core.store.models import WorkerQueue

log = logging.getLogger(__name__)
MAX_NAME = 255


def record(engine: Engine, active: dict[str, list[dict]], now: float, keep: float) -> None:
    """Replace the queues of every worker in `active` (hostname -> active_queues reply)."""
    rows = {(host[:MAX_NAME], queue["name"][:MAX_NAME])
            for host, queues in active.items() for queue in queues or ()
            if isinstance(queue, dict) and isinstance(queue.get("name"), str)
            and queue["name"]}
    hosts = sorted({host[:MAX_NAME] for host in active})
    try:
        with engine.begin() as conn:
            for chunk in chunks(hosts):
                conn.execute(delete(WorkerQueue).where(WorkerQueue.hostname.in_(chunk)))
            if rows:
                conn.execute(insert(WorkerQueue), [
                    {"hostname": host, "queue": queue, "seen_at": now}
                    for host, queue in sorted(rows)])
            conn.execute(delete(WorkerQueue).where(WorkerQueue.seen_at < now - keep))
    except IntegrityError:  # another collector's sampler wrote the same at once (takeover)
        log.debug("worker queues written by another sampler meanwhile; next sample retries")
