"""Builders of validated `Event` records shaped like real Celery events, for tests and
the write-rate measurement. They go through `events.validate`, so what tests feed the
writer is exactly what the receiver would hand it."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any, Iterator

from lookout.collectors.events import Event, validate

T0 = 1_700_000_000.0
_clock = itertools.count(1)


def event(type_: str, hostname: str = "w1@host", timestamp: float = T0,
          local_received: float | None = None, **fields: Any) -> Event:
    raw = {"type": type_, "hostname": hostname, "timestamp": timestamp,
           "utcoffset": 0, "pid": 100, "clock": next(_clock), **fields}
    received = timestamp + 0.01 if local_received is None else local_received
    return validate(raw, received, 16_384)


def task(type_: str, uuid: str, timestamp: float, hostname: str = "w1@host",
         **fields: Any) -> Event:
    return event(type_, hostname, timestamp, uuid=uuid, **fields)


def lifecycle(uuid: str, t: float, hostname: str = "w1@host", name: str = "proj.add",
              runtime: float = 0.2) -> list[Event]:
    """sent, received, started, succeeded: one ordinary successful task."""
    return [
        task("task-sent", uuid, t, "client@web", name=name, args="(1, 2)", kwargs="{}",
             retries=0, queue="celery", exchange="", routing_key="celery"),
        task("task-received", uuid, t + 0.01, hostname, name=name, args="(1, 2)",
             kwargs="{}", retries=0),
        task("task-started", uuid, t + 0.02, hostname),
        task("task-succeeded", uuid, t + 0.02 + runtime, hostname, result="3",
             runtime=runtime),
    ]


def iso(epoch: float) -> str:
    """A time as Celery puts it in events: `datetime.isoformat()` of an aware datetime."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def retried_by_celery(uuid: str, t: float, hostname: str = "w1@a", retries: int = 2,
                      countdown: float = 0.2) -> list[Event]:
    """A top-level task that calls `self.retry(countdown=...)` until its last attempt
    succeeds, as Celery 5.7 reports it (sample.retry on a real worker). Each retry is
    re-sent from inside the task under the same id, so the retry's task-sent and
    task-received name the task as its own parent (and carry the retry count and an eta);
    the retry's task-received is stamped before the task-retried that sent it."""
    described = dict(name="sample.retry", args="()", kwargs=f"{{'countdown': {countdown}}}",
                     root_id=uuid)
    routing = dict(queue="q1", exchange="", routing_key="q1")
    events = [task("task-sent", uuid, t, "client@web", parent_id=None, retries=0, eta=None,
                   expires=None, **described, **routing),
              task("task-received", uuid, t + 0.002, hostname, parent_id=None, retries=0,
                   eta=None, expires=None, **described),
              task("task-started", uuid, t + 0.012, hostname)]
    for n in range(1, retries + 1):
        base = t + countdown * n
        eta = iso(base + countdown + 0.01)
        events += [
            task("task-received", uuid, base + 0.024, hostname, parent_id=uuid, retries=n,
                 eta=eta, expires=None, **described),
            task("task-sent", uuid, base + 0.026, hostname, parent_id=uuid, retries=n,
                 eta=eta, expires=None, **described, **routing),
            task("task-retried", uuid, base + 0.03, hostname,
                 exception="RuntimeError('try again')",
                 traceback=f"Traceback ... Retry in {countdown}s"),
            task("task-started", uuid, base + countdown + 0.01, hostname)]
    events.append(task("task-succeeded", uuid, t + countdown * retries + 0.22, hostname,
                       result="'retried'", runtime=0.0002))
    return events


def synthetic_stream(tasks: int, hosts: int = 8, per_message: int = 40,
                     start: float = T0) -> Iterator[list[Event]]:
    """Events in task.multi-sized chunks: whole lifecycles spread over `hosts` workers."""
    chunk: list[Event] = []
    for i in range(tasks):
        chunk.extend(lifecycle(f"task-{i:08d}", start + i * 0.001, f"w{i % hosts}@bench",
                               name=f"proj.task{i % 5}", runtime=0.001 * (i % 500 + 1)))
        if len(chunk) >= per_message:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def hard_time_limit(uuid: str, t: float, hostname: str = "w1@host", name: str = "proj.slow",
                    limit: int = 1) -> list[Event]:
    """A task killed by its hard time limit, as Celery 5.7 reports it (seen on a real
    worker): two task-failed events 3 ms apart, the pool's then on_timeout's, both with
    the pickling wrapper's empty repr as exception; the tracebacks name the real one."""
    def traceback(where: str) -> str:
        return ("Traceback (most recent call last):\n  File \"/venv/celery/" + where +
                "\n    raise exc\nbilliard.exceptions.TimeLimitExceeded: "
                f"TimeLimitExceeded({limit},)\n")
    return [
        task("task-sent", uuid, t, "client@web", name=name, args="()", kwargs="{}",
             retries=0, queue="celery", exchange="", routing_key="celery"),
        task("task-received", uuid, t + 0.003, hostname, name=name, args="()", kwargs="{}",
             retries=0),
        task("task-started", uuid, t + 0.006, hostname),
        task("task-failed", uuid, t + limit + 0.01, hostname,
             exception="ExceptionWithTraceback()",
             traceback=traceback('billiard/pool.py", line 745, in on_hard_timeout')),
        task("task-failed", uuid, t + limit + 0.013, hostname,
             exception="ExceptionWithTraceback()",
             traceback=traceback('worker/request.py", line 563, in on_timeout')),
    ]
