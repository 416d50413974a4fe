"""Synthetic Celery worker event load, published through Celery's own EventDispatcher.

Each simulated worker owns a dispatcher set up the way a prefork worker's consumer sets
one up (celery/worker/consumer/events.py): task events are buffered and leave as
`task.multi` batches, worker events go one per message. Workers announce themselves
with worker-online, send worker-heartbeat every `freq` seconds and worker-offline at
the end. Run as a script it prints one JSON line with what it sent, so a benchmark can
start several of these processes and add their counts up.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import uuid
from collections import Counter

TASK_NAMES = ("proj.tasks.add", "proj.tasks.resize_image", "proj.billing.charge",
              "proj.mail.send_welcome", "proj.reports.build")
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/.venv/lib/python3.11/site-packages/celery/app/trace.py", line 453, '
    "in trace_task\n    R = retval = fun(*args, **kwargs)\n"
    '  File "/app/proj/billing.py", line 42, in charge\n'
    "    raise {exc}\n{exc}\n")
HEARTBEAT_FREQ = 2.0


class SimulatedWorker:
    """One worker hostname: its dispatcher, counters and the heartbeat schedule."""

    def __init__(self, app, connection, hostname: str, buffer_limit: int = 24):
        self.dispatcher = app.events.Dispatcher(
            connection, hostname=hostname, buffer_group=["task"],
            buffer_limit=buffer_limit)
        self.sent: Counter = Counter()
        self.processed = 0
        self.next_heartbeat = 0.0
        self.sw = {"sw_ident": "py-celery", "sw_ver": _celery_version(),
                   "sw_sys": platform.system()}

    def worker_event(self, type_: str) -> None:
        self.dispatcher.send(type_, freq=HEARTBEAT_FREQ, active=1, processed=self.processed,
                             loadavg=[0.5, 0.4, 0.3], **self.sw)
        self.sent[type_] += 1

    def heartbeat_if_due(self, now: float) -> None:
        if now >= self.next_heartbeat:
            self.worker_event("worker-heartbeat")
            self.next_heartbeat = now + HEARTBEAT_FREQ

    def task(self, rng: random.Random, tag: str = "") -> None:
        """Emit one task's whole life: 3 events, or 6 when it is retried once."""
        send, task_id = self.dispatcher.send, str(uuid.uuid4())
        name = rng.choice(TASK_NAMES)
        args = f"({rng.randint(1, 10**6)}, {rng.randint(1, 100)}{tag})"
        received = {"uuid": task_id, "name": name, "args": args, "kwargs": "{}",
                    "root_id": task_id, "parent_id": None, "eta": None, "expires": None}
        roll = rng.random()
        retried = roll < 0.05
        send("task-received", retries=0, **received)
        send("task-started", uuid=task_id)
        if retried:
            exc = "Retry('Retry in 1s: ConnectionError()')"
            send("task-retried", uuid=task_id, exception=exc,
                 traceback=TRACEBACK.format(exc=exc))
            send("task-received", retries=1, **received)
            send("task-started", uuid=task_id)
        elif roll < 0.15:
            exc = "ValueError('card declined')"
            send("task-failed", uuid=task_id, exception=exc,
                 traceback=TRACEBACK.format(exc=exc))
        if retried or roll >= 0.15:
            send("task-succeeded", uuid=task_id, result=repr(rng.randint(1, 10**6)),
                 runtime=round(rng.expovariate(20.0), 6))
        self.processed += 1
        self.sent["tasks"] += 1
        self.sent["task-events"] += 6 if retried else 3

    def flush(self) -> None:
        self.dispatcher.flush()

    def close(self) -> None:
        self.dispatcher.flush()
        self.dispatcher.close()


def _celery_version() -> str:
    import celery
    return celery.__version__


def run(broker: str, events: int, rate: float, duration: float, workers: int,
        prefix: str, start_at: float, seed: int, stamp: bool) -> dict:
    """Send `events` task events (or for `duration` s) at `rate`/s (0 = flat out)."""
    from celery import Celery

    app = Celery("loadgen", broker=broker, set_as_current=False)
    rng = random.Random(seed)
    connections = [app.connection_for_write() for _ in range(workers)]
    sim = [SimulatedWorker(app, conn, f"celery@{prefix}-{i}") for i, conn in
           enumerate(connections)]
    for worker in sim:
        worker.worker_event("worker-online")
        worker.next_heartbeat = time.time() + HEARTBEAT_FREQ
    if start_at:
        time.sleep(max(0.0, start_at - time.time()))
    begin = time.time()
    stop_at = begin + duration if duration else float("inf")
    sent, turn = 0, 0
    while (not events or sent < events) and time.time() < stop_at:
        now = time.time()
        # A worker's event loop flushes buffered task events on every tick; ticks are
        # about 10 ms apart under rate control, so batches stay small as in production.
        due = int(rate * (now - begin)) - sent if rate else 240
        if events:
            due = min(due, events - sent)
        if due <= 0:
            time.sleep(0.005)
            continue
        tag = f", sent_at={now!r}" if stamp else ""
        goal = sent + due
        while sent < goal:
            worker = sim[turn % workers]
            turn += 1
            before = worker.sent["task-events"]
            worker.task(rng, tag)
            sent += worker.sent["task-events"] - before
        for worker in sim:
            worker.flush()
            worker.heartbeat_if_due(now)
    elapsed = time.time() - begin
    for worker in sim:
        worker.worker_event("worker-offline")
        worker.close()
    for conn in connections:
        conn.release()
    total: Counter = Counter()
    for worker in sim:
        total.update(worker.sent)
    worker_events = sum(v for k, v in total.items() if k.startswith("worker-"))
    return {"task_events": total["task-events"], "tasks": total["tasks"],
            "worker_events": worker_events, "elapsed": elapsed, "begin": begin,
            "rate": total["task-events"] / elapsed if elapsed else 0.0, "pid": os.getpid()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--events", type=int, default=0, help="task events to send")
    parser.add_argument("--rate", type=float, default=0.0, help="task events/s; 0 = max")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = no limit")
    parser.add_argument("--workers", type=int, default=4, help="worker hostnames")
    parser.add_argument("--prefix", default=f"gen{os.getpid()}")
    parser.add_argument("--start-at", type=float, default=0.0, help="epoch start time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stamp", action="store_true",
                        help="put the send time in each task's args (live latency)")
    opts = parser.parse_args(argv)
    if not opts.events and not opts.duration:
        parser.error("give --events or --duration")
    result = run(opts.broker, opts.events, opts.rate, opts.duration, opts.workers,
                 opts.prefix, opts.start_at, opts.seed, opts.stamp)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
