"""Collectors side by side: 1 vs 2 collectors on RabbitMQ + PostgreSQL, and a Redis pair's
rolling restart under load.

  scale    RabbitMQ, PostgreSQL: a burst of --events into a fresh store, first with one
           `lookout collect`, then with two sharing the queue (competing consumers).
           Printed: time from the first send until every event is stored, events/s, and
           CPU seconds per 1,000 events (collector processes plus the PostgreSQL server).
  rolling  Redis, PostgreSQL: two collectors; the generator runs at --rate for
           --seconds while each collector in turn is stopped (SIGTERM) and started again.
           Printed: task events sent, stored, lost (target 0).
Usage: python benchmarks/pair.py [--events 100000] [--rate 5000] [--seconds 30]
Targets are printed, never asserted. Needs RabbitMQ, Redis and PostgreSQL on localhost.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from common import (
    VENV_BIN,
    Children,
    TreeSampler,
    dedicated_broker,
    machine_load,
    run_generators,
    wait_for,
)
from ingest import PostgresCPU, database

AMQP = "amqp://guest:guest@127.0.0.1:5672//"
REDIS = "redis://127.0.0.1:6379/14"


def start_collector(children: Children, broker: str, db: str, name: str, workdir: Path):
    env = {**os.environ, "LOOKOUT_COLLECTOR_NAME": name,
           "LOOKOUT_EVENT_QUEUE_NAME": "lookout.bench-pair",
           "LOOKOUT_DATA_DIR": str(workdir / name)}
    return children.start([str(VENV_BIN / "lookout"), "collect", "--broker", broker,
                           "--database", db], log=workdir / f"{name}.log", env=env)


def connected(engine, names: list[str], after: float = 0.0) -> bool:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, connected, started_at FROM collector_status")).all()
    up = {name for name, ok, started in rows if ok and started > after}
    return set(names) <= up


def stored(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM task_events")).scalar_one()


def scale(count: int, opts, workdir: Path) -> dict:
    """One burst into a fresh store with `count` collectors on one RabbitMQ queue."""
    workdir.mkdir(parents=True, exist_ok=True)
    with Children() as children, dedicated_broker(AMQP) as broker, \
            database("postgres", workdir) as db:
        from lookout.core.store.db import upgrade

        upgrade(db)
        engine = create_engine(db)
        names = [f"pair-{i}" for i in range(count)]
        procs = [start_collector(children, broker, db, name, workdir) for name in names]
        wait_for(lambda: connected(engine, names), 60, 0.25, "collectors connected")
        with contextlib.ExitStack() as stack:
            samplers = [stack.enter_context(TreeSampler(p.pid)) for p in procs]
            server = stack.enter_context(PostgresCPU())
            sent = run_generators(children, broker, 2, events=opts.events,
                                  log=workdir / "gen.log")
            wait_for(lambda: stored(engine) >= sent["task_events"], opts.timeout, 0.2,
                     "every event stored")
            done = time.time()
        cpu = sum(s.cpu for s in samplers) + server.cpu
        engine.dispose()
        took = done - sent["begin"]
        return {"collectors": count, "events": sent["task_events"], "seconds": took,
                "rate": sent["task_events"] / took,
                "cpu_per_1k": 1000 * cpu / sent["task_events"]}


def rolling(opts, workdir: Path) -> dict:
    """Two collectors on Redis; each restarted in turn while events stream in."""
    workdir.mkdir(parents=True, exist_ok=True)
    with Children() as children, dedicated_broker(REDIS) as broker, \
            database("postgres", workdir) as db:
        from lookout.core.store.db import upgrade

        upgrade(db)
        engine = create_engine(db)
        names = ["redis-a", "redis-b"]
        procs = {name: start_collector(children, broker, db, name, workdir) for name in names}
        wait_for(lambda: connected(engine, names), 60, 0.25, "collectors connected")
        holder: dict = {}
        load = threading.Thread(target=lambda: holder.update(run_generators(
            children, broker, 1, rate=opts.rate, duration=opts.seconds,
            log=workdir / "gen.log")), daemon=True)
        load.start()
        time.sleep(opts.seconds / 5)  # let the stream settle before the first restart
        for name in names:  # the rolling restart the README describes
            children.stop(procs[name])
            started = time.time()
            procs[name] = start_collector(children, broker, db, name, workdir)
            wait_for(lambda: connected(engine, [name], after=started), 60, 0.2,
                     f"{name} back")
            print(f"  restarted {name}: back after {time.time() - started:.1f} s", flush=True)
        load.join()
        sent = holder["task_events"]
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: stored(engine) >= sent, 60, 0.2, "every event stored")
        kept = stored(engine)
        engine.dispose()
        return {"sent": sent, "stored": kept, "lost": max(0, sent - kept),
                "rate": holder["rate"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--only", choices=("scale", "rolling"))
    opts = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lookout-pair-"))
    print(f"logs in {workdir}; {machine_load()}", flush=True)
    if opts.only in (None, "scale"):
        results = [scale(n, opts, workdir / f"scale-{n}") for n in (1, 2)]
        print(f"\n{'RabbitMQ + PostgreSQL':24}{'events':>10}{'stored in':>11}{'ev/s':>9}"
              f"{'CPU s/1k':>10}")
        for r in results:
            print(f"{r['collectors']} collector(s){'':10}{r['events']:>10,}{r['seconds']:>10.1f}s"
                  f"{r['rate']:>9,.0f}{r['cpu_per_1k']:>10.3f}")
        print(f"2 vs 1: {results[1]['rate'] / results[0]['rate']:.2f}x the rate")
    if opts.only in (None, "rolling"):
        print(f"\nRedis pair, rolling restart at {opts.rate:,.0f} ev/s for {opts.seconds:.0f} s; "
              f"{machine_load()}", flush=True)
        r = rolling(opts, workdir / "rolling")
        print(f"sent {r['sent']:,} at {r['rate']:,.0f}/s, stored {r['stored']:,}, "
              f"lost {r['lost']:,} (target 0)")


if __name__ == "__main__":
    main()
