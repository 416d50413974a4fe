"""The event consumers under test, behind one small interface: Lookout's collector, Flower.

`counts()` returns what the consumer has taken in so far; the benchmark works on
differences between two calls, so probe events sent during start-up do not count.
"""
from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

from common import VENV_BIN, Children, free_port, send_probe, wait_for


class Target:
    name = "?"
    proc = None
    reports_lag = False  # whether counts() has a meaningful "write_lag"

    def counts(self) -> dict:
        """{'task_events': n, ...}: task events this consumer has kept (or seen)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the target holds besides its process (stopped by Children)."""

    def wait_subscribed(self, broker: str, timeout: float = 60.0) -> None:
        """Send probe events until one shows up: only then is the consumer subscribed."""
        base = self.counts()["task_events"]
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}; "
                                 f"see {self.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} never received a probe event")
            try:
                send_probe(broker)
                time.sleep(0.3)
                if self.counts()["task_events"] > base:
                    break
            except (OSError, ValueError, KeyError, TypeError):
                time.sleep(0.3)  # not answering yet
        time.sleep(1.0)  # let the last probes land before anyone takes a baseline


class LookoutTarget(Target):
    """`lookout collect` writing into SQLite or PostgreSQL; counts come from the store."""

    name = "Lookout"
    reports_lag = True

    def __init__(self, children: Children, broker: str, database: str, workdir: Path):
        from sqlalchemy import create_engine

        self.log = workdir / "lookout-collect.log"
        self.database = database
        self.proc = children.start(
            [str(VENV_BIN / "lookout"), "collect", "--broker", broker, "--database", database],
            log=self.log, env={**os.environ, "LOOKOUT_COLLECTOR_NAME": "bench"})
        self.engine = create_engine(database)
        wait_for(self._status, 60, 0.25, "the collector's status row")
        self.wait_subscribed(broker)

    def _status(self) -> dict | None:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT stats, connected FROM collector_status WHERE name = 'bench'")).first()
        if row is None or not row[1]:
            return None
        return json.loads(row[0] or "{}")

    def counts(self) -> dict:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM task_events")).scalar_one()
            tasks = conn.execute(text("SELECT count(*) FROM tasks")).scalar_one()
        stats = self._status() or {}
        return {"task_events": rows, "tasks": tasks,
                "received": stats.get("received", 0), "stored": stats.get("stored", 0),
                "rejected": stats.get("rejected", 0), "dropped": stats.get("dropped", 0),
                "duplicates": stats.get("duplicates", 0),
                "write_lag": stats.get("write_lag", 0.0)}

    def close(self) -> None:
        self.engine.dispose()


class FlowerTarget(Target):
    """Flower in memory only; counts from its Prometheus `flower_events_total`.

    That counter is incremented once per task event that Flower's state machine has
    processed, so it is the exact number of task events Flower saw. /api/tasks is
    no good for this: it lists tasks, not events, and evicts beyond --max-tasks.
    """

    name = "Flower"

    def __init__(self, children: Children, broker: str, workdir: Path):
        self.log = workdir / "flower.log"
        self.port = free_port()
        self.proc = children.start(
            [str(VENV_BIN / "celery"), "--broker", broker, "flower",
             f"--port={self.port}", "--address=127.0.0.1", "--persistent=False"],
            log=self.log, env={**os.environ, "FLOWER_UNAUTHENTICATED_API": "true"})
        wait_for(lambda: self._get("/healthcheck"), 60, 0.25, "Flower's HTTP port")
        self.wait_subscribed(broker)

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
            return r.read().decode()

    def counts(self) -> dict:
        total = 0.0
        for line in self._get("/metrics").splitlines():
            if line.startswith("flower_events_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return {"task_events": int(total)}

    def close(self) -> None:
        pass


class FloorTarget(Target):
    """benchmarks/floor.py: decode every event, keep nothing (Redis only). The least CPU
    per event any consumer can spend on this broker; Lookout's target is within 2x."""

    name = "floor"

    def __init__(self, children: Children, broker: str, workdir: Path):
        import sys

        self.log = workdir / "floor.log"
        self.counts_file = workdir / "floor-counts.json"
        self.proc = children.start(
            [sys.executable, str(Path(__file__).with_name("floor.py")), broker,
             str(self.counts_file)], log=self.log, env=dict(os.environ))
        wait_for(self.counts_file.exists, 30, 0.1, "the floor subscriber")
        self.wait_subscribed(broker)

    def counts(self) -> dict:
        return json.loads(self.counts_file.read_text())
