"""Writer-only benchmark: events/s through HistoryWriter.write_batch, no broker involved.

Feeds synthetic task lifecycles (sent, received, started, succeeded over 8 hosts, in
task.multi-sized chunks) in batches of `batch_size` to a fresh store, and prints the wall
rate and the rate per CPU-second of this process (the figure that stays meaningful when
the machine is shared; for PostgreSQL the server's own time is outside it).
`--failures 0.1` makes that share of the tasks fail instead of succeeding (the partial
indexes of failed tasks cost only then).
Usage: python benchmarks/write_batch.py [--events 150000] [--failures 0.1] [--database URL]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    from helpers.event_factory import synthetic_stream, task

    from lookout.collectors.buffer import EventBuffer
    from lookout.collectors.stats import CollectorStats
    from lookout.collectors.writer import HistoryWriter
    from lookout.core.config import Settings
    from lookout.core.store import db

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--failures", type=float, default=0.0,
                        help="share of the tasks that fail instead (0 to 1)")
    parser.add_argument("--database", help="a fresh, empty database URL (default: SQLite)")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    db.upgrade(url)
    engine = db.make_engine(url)
    settings = Settings()
    writer = HistoryWriter(engine, EventBuffer(), settings, CollectorStats())
    events = [e for chunk in synthetic_stream(args.events // 4) for e in chunk]
    every = round(1 / args.failures) if args.failures > 0 else 0
    for i, event in enumerate(events):
        if every and event.type == "task-succeeded" and (i // 4) % every == 0:
            events[i] = task("task-failed", event.uuid, event.timestamp, event.hostname,
                             exception="ValueError('bad input')",
                             traceback="Traceback (most recent call last):\n  ...")
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(events), settings.batch_size):
        writer.write_batch(events[start:start + settings.batch_size])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    engine.dispose()
    print(f"{engine.dialect.name}: {len(events)} events in {wall:.1f}s: "
          f"{len(events) / wall:,.0f} events/s wall, {len(events) / cpu:,.0f} per CPU-second;"
          f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
