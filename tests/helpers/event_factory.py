"""Builders of validated `Event` records shaped like real Celery events, for tests and
the write-rate measurement. They go through `events.validate`, so what tests feed the
writer is exactly what the receiver would hand it."""
from __future__ import annotations

import itertools
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
