"""Helpers shared by the benchmark scripts: child processes, memory sampling, brokers.

Every child runs in its own session so one `killpg` ends it with its children, and
`Children` kills whatever is left on exit, on Ctrl-C and on SIGTERM. Nothing here runs
at import time.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENV_BIN = Path(sys.executable).parent
REDIS_DB = 14  # a database of its own, so test sessions on the same Redis are unaffected


class Children:
    """Start child processes and make sure none outlives the benchmark."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], log: Path | None = None, **kwargs) -> subprocess.Popen:
        out = open(log, "ab") if log else subprocess.DEVNULL
        proc = subprocess.Popen(cmd, stdout=kwargs.pop("stdout", out), stderr=out,
                                start_new_session=True, cwd=kwargs.pop("cwd", ROOT), **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0) -> None:
        """SIGTERM the child's process group, SIGKILL it if it lingers."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            self.stop(proc, timeout=5.0)

    def __enter__(self) -> "Children":
        # SIGTERM becomes an exception so `with` blocks unwind and clean up as for Ctrl-C;
        # and Ctrl-C must work even if started from a shell that ignores SIGINT.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_all()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class TreeSampler:
    """Peak resident memory and CPU time of a process and its children.

    Memory is sampled every `interval` s. CPU seconds are the figure to trust when the
    machine is shared: wall-clock rates drop when other work takes the cores, CPU
    seconds per event do not.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.cpu = 0.0  # CPU seconds used while sampling
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tree-sampler")

    def _sample(self, root: psutil.Process, cpu: dict[int, float]) -> int:
        total = 0
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
                times = proc.cpu_times()
                cpu[proc.pid] = times.user + times.system
        return total

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
            start: dict[int, float] = {}
            self._sample(root, start)
            while not self._stop.is_set():
                self.peak = max(self.peak, self._sample(root, self._cpu))
                self.cpu = sum(v - start.get(k, 0.0) for k, v in self._cpu.items())
                self._stop.wait(self.interval)
        except psutil.NoSuchProcess:
            return

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def machine_load() -> str:
    """One line on how busy the machine is: figures taken while it is busy are low."""
    one, five, _ = os.getloadavg()
    busy = psutil.cpu_percent(interval=0.5)
    note = "" if one < 1.0 else "  (machine busy: wall-clock rates are understated)"
    return f"load average {one:.1f}/{five:.1f}, CPU {busy:.0f}% busy{note}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            value = predicate()
            if value:
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def dedicated_broker(url: str):
    """Yield a broker URL of our own: Redis DB 14 flushed, or a throwaway RabbitMQ vhost."""
    parts = urlsplit(url)
    if parts.scheme.startswith("redis"):
        own = urlunsplit(parts._replace(path=f"/{REDIS_DB}"))
        import redis
        client = redis.Redis.from_url(own)
        client.flushdb()
        try:
            yield own
        finally:
            client.flushdb()
            client.close()
    elif parts.scheme in ("amqp", "pyamqp"):
        vhost = f"lookout_bench_{uuid.uuid4().hex[:8]}"
        _rabbitmqctl("add_vhost", vhost)
        user = parts.username or "guest"
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        try:
            yield urlunsplit(parts._replace(path=f"/{vhost}"))
        finally:
            _rabbitmqctl("delete_vhost", vhost)
    else:
        raise SystemExit(f"unsupported broker {url!r}: use redis:// or amqp://")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, stdout=subprocess.DEVNULL)


def run_generators(children: Children, broker: str, count: int, *, events: int = 0,
                   rate: float = 0.0, duration: float = 0.0, stamp: bool = False,
                   workers: int = 4, log: Path | None = None) -> dict:
    """Run `count` loadgen processes sharing `events`/`rate`; return their summed result."""
    start_at = time.time() + 1.5  # lets every process connect and say worker-online
    procs = []
    for i in range(count):
        cmd = [sys.executable, str(BENCH_DIR / "loadgen.py"), "--broker", broker,
               "--workers", str(workers), "--prefix", f"gen{i}", "--seed", str(i + 1),
               "--start-at", repr(start_at)]
        if events:
            cmd += ["--events", str(events // count + (i < events % count))]
        if rate:
            cmd += ["--rate", str(rate / count)]
        if duration:
            cmd += ["--duration", str(duration)]
        if stamp:
            cmd.append("--stamp")
        procs.append(children.start(cmd, log=log, stdout=subprocess.PIPE))
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        children.procs.remove(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed (exit {proc.returncode}); see {log}")
        results.append(json.loads(out))
    total = {key: sum(r[key] for r in results)
             for key in ("task_events", "tasks", "worker_events")}
    total["begin"] = min(r["begin"] for r in results)
    total["end"] = max(r["begin"] + r["elapsed"] for r in results)
    total["rate"] = total["task_events"] / max(total["end"] - total["begin"], 1e-9)
    return total


def send_probe(broker: str, hostname: str = "celery@bench-probe") -> None:
    """Publish one task event so a consumer can show it is subscribed."""
    from celery import Celery

    app = Celery("probe", broker=broker, set_as_current=False)
    with app.connection_for_write() as conn:
        with app.events.Dispatcher(conn, hostname=hostname) as dispatcher:
            dispatcher.send("task-started", uuid=str(uuid.uuid4()))


def fmt_mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:.0f} MB"
