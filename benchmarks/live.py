"""Live benchmark: update latency seen by many Socket.IO clients while events stream in.

Starts `lookout run --no-auth` (collector and web in one process; or, with --split,
`lookout web` and `lookout collect` linked by --message-queue), connects --clients
python-socketio clients to the /live namespace (rooms "overview" and "tasks"), and runs
the load generator at --rate with the send time stamped into each task's args. A client
takes, for every "tasks" message, receive time minus the send time of the newest task
in it: how stale the freshest row on screen is. Reported: p50/p95/max of that over all
clients and messages, messages per client per second, and the web process's peak RSS.
Also the screen's age just before each update (now minus the newest row shown so far):
updates that come late but fresh look good by the first figure and bad by this one.
Usage: python benchmarks/live.py [--clients 200] [--rate 10000] [--seconds 20] [--quick]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from common import (
    BENCH_DIR,
    VENV_BIN,
    Children,
    TreeSampler,
    dedicated_broker,
    fmt_mb,
    free_port,
    machine_load,
    run_generators,
    wait_for,
)

NAMESPACE = "/live"
ROOMS = ("overview", "tasks")
SENT_AT = re.compile(r"sent_at=([0-9.]+)")


# -- client side: runs in its own processes so decoding does not skew the server's figures

def run_clients(url: str, count: int, seconds: float, start_at: float) -> dict:
    """Connect `count` clients, listen until start_at + seconds, return what they saw."""
    import socketio

    latencies: list[float] = []
    ages: list[float] = []  # how old the newest row on screen was when the next one came
    messages = [0]
    failures: list[str] = []
    lock = threading.Lock()

    def make_client() -> "socketio.Client":
        # websocket-client checks UTF-8 byte by byte in Python unless told not to: at
        # 100 clients that alone took a whole core and made the clients the bottleneck.
        client = socketio.Client(reconnection=False, handle_sigint=False,
                                 websocket_extra_options={"skip_utf8_validation": True})
        newest = [None]  # send time of the newest row this client has shown

        @client.on("tasks", namespace=NAMESPACE)
        def on_tasks(data):
            now = time.time()
            stamps = [float(m.group(1)) for row in data.get("tasks", ())
                      if (m := SENT_AT.search(row.get("args") or ""))]
            with lock:
                messages[0] += 1
                if stamps and now >= start_at:
                    latencies.append(now - max(stamps))
                    if newest[0] is not None:
                        ages.append(now - newest[0])
                if stamps:
                    newest[0] = max(newest[0] or 0.0, max(stamps))

        @client.on("overview", namespace=NAMESPACE)
        def on_overview(data):
            with lock:
                messages[0] += 1
        return client

    clients = []
    for _ in range(count):
        client = make_client()
        try:
            client.connect(url, namespaces=[NAMESPACE], transports=["websocket"],
                           wait_timeout=30)
            for room in ROOMS:
                reply = client.call("subscribe", {"room": room}, namespace=NAMESPACE,
                                    timeout=30)
                if not (reply or {}).get("ok"):
                    failures.append(f"subscribe {room}: {reply}")
            clients.append(client)
        except Exception as exc:  # noqa: BLE001 - counted and reported, not fatal
            failures.append(f"{exc.__class__.__name__}: {exc}")
    print(json.dumps({"connected": len(clients)}), flush=True)
    time.sleep(max(0.0, start_at + seconds - time.time()))
    with lock:
        return {"latencies": list(latencies), "ages": list(ages), "messages": messages[0],
                "clients": len(clients), "failures": failures[:5], "failed": len(failures)}


class LagWatcher:
    """Samples the collector's own write lag (receive to commit) once a second."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.values: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lag-watcher")

    def _run(self) -> None:
        import sqlite3

        while not self._stop.wait(1.0):
            with contextlib.suppress(sqlite3.Error, TypeError, ValueError):
                conn = sqlite3.connect(self.db_path, timeout=5)
                try:
                    row = conn.execute("SELECT stats FROM collector_status WHERE name = ?",
                                       ("bench-live",)).fetchone()
                finally:
                    conn.close()
                self.values.append(float(json.loads(row[0])["write_lag"]))

    def __enter__(self) -> "LagWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- orchestration -----------------------------------------------------------------------

def start_lookout(children: Children, broker: str, workdir: Path, split: bool) -> tuple:
    """Start the server (and collector); return (url, web process)."""
    port = free_port()
    database = f"sqlite:///{workdir / 'lookout.db'}"
    common = ["--broker", broker, "--database", database]
    # Every client comes from 127.0.0.1 with --no-auth: one "client" to the per-client
    # socket cap (20 by default), which this benchmark is not about.
    env = {**os.environ, "LOOKOUT_COLLECTOR_NAME": "bench-live",
           "LOOKOUT_MAX_SOCKETS_PER_CLIENT": "1000"}
    if split:
        queue = broker.rsplit("/", 1)[0] + "/14"
        web = children.start([str(VENV_BIN / "lookout"), "web", *common, "--no-auth",
                              "--port", str(port), "--message-queue", queue],
                             log=workdir / "lookout-web.log", env=env)
        children.start([str(VENV_BIN / "lookout"), "collect", *common,
                        "--message-queue", queue], log=workdir / "lookout-collect.log",
                       env=env)
    else:
        web = children.start([str(VENV_BIN / "lookout"), "run", *common, "--no-auth",
                              "--port", str(port)], log=workdir / "lookout-run.log", env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: web.poll() is None and answers(url + "/healthz"), 60, 0.25,
             "lookout's web port")
    return url, web


def answers(url: str) -> bool:
    """True once the server answers at all (/healthz says 503 until the collector is up)."""
    try:
        urllib.request.urlopen(url, timeout=5).close()
    except urllib.error.HTTPError:
        pass
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--client-procs", type=int, default=2,
                        help="processes the clients are spread over")
    parser.add_argument("--rate", type=float, default=10_000, help="task events/s")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--split", action="store_true",
                        help="lookout web + lookout collect linked by a Redis message queue")
    parser.add_argument("--quick", action="store_true", help="20 clients, 2,000/s, 8 s")
    parser.add_argument("--as-clients", nargs=4, metavar=("URL", "N", "SECONDS", "START"),
                        help=argparse.SUPPRESS)  # internal: one client process
    opts = parser.parse_args(argv)
    if opts.as_clients:
        url, count, seconds, start_at = opts.as_clients
        print(json.dumps(run_clients(url, int(count), float(seconds), float(start_at))),
              flush=True)
        # No polite disconnects: a hundred of them behind a backlog of pushes take
        # minutes, and the server is stopped right after anyway.
        os._exit(0)
    if opts.quick:
        opts.clients, opts.rate, opts.seconds = 20, 2000.0, 8.0
    workdir = Path(tempfile.mkdtemp(prefix="lookout-live-"))
    print(f"broker {opts.broker}, logs in {workdir}; {machine_load()}", flush=True)
    try:
        with Children() as children, dedicated_broker(opts.broker) as broker:
            url, web = start_lookout(children, broker, workdir, opts.split)
            result = measure(children, broker, url, web, opts, workdir)
    except KeyboardInterrupt:
        print("interrupted; children stopped")
        raise SystemExit(130)
    report(result, opts)


def measure(children: Children, broker: str, url: str, web, opts, workdir: Path) -> dict:
    # Clients connect first (200 handshakes take a while); the clock starts with the load.
    connect_time = 10.0 + opts.clients * 0.05
    start_at = time.time() + connect_time
    procs = []
    per_proc = [opts.clients // opts.client_procs + (i < opts.clients % opts.client_procs)
                for i in range(opts.client_procs)]
    for count in per_proc:
        procs.append(children.start(
            [sys.executable, str(BENCH_DIR / "live.py"), "--as-clients", url, str(count),
             str(opts.seconds), repr(start_at)], log=workdir / "clients.log",
            stdout=subprocess.PIPE, text=True))
    connected = sum(json.loads(proc.stdout.readline() or '{"connected": 0}')["connected"]
                    for proc in procs)
    print(f"{connected}/{opts.clients} clients connected; streaming {opts.rate:,.0f} "
          f"events/s for {opts.seconds:.0f} s", flush=True)
    time.sleep(max(0.0, start_at - 1.5 - time.time()))  # generators wait 1.5 s
    lags = LagWatcher(workdir / "lookout.db")
    with TreeSampler(web.pid) as usage, contextlib.ExitStack() as stack, lags:
        client_usage = [stack.enter_context(TreeSampler(proc.pid)) for proc in procs]
        sent = run_generators(children, broker, max(1, round(opts.rate / 25_000)),
                              rate=opts.rate, duration=opts.seconds, stamp=True,
                              log=workdir / "loadgen.log")
        outputs = [json.loads(proc.communicate(timeout=120)[0].splitlines()[-1])
                   for proc in procs]
    latencies = [x for out in outputs for x in out["latencies"]]
    ages = [x for out in outputs for x in out["ages"]]
    return {"sent": sent, "latencies": latencies, "ages": ages, "connected": connected,
            "messages": sum(out["messages"] for out in outputs),
            "failures": [f for out in outputs for f in out["failures"]],
            "peak_rss": usage.peak, "cpu": usage.cpu,
            "client_cpu": sum(u.cpu for u in client_usage), "write_lags": lags.values,
            "elapsed": sent["end"] - sent["begin"]}


def report(result: dict, opts) -> None:
    lat, sent = result["latencies"], result["sent"]
    p50, p95 = percentile(lat, 0.50), percentile(lat, 0.95)
    per_client = result["messages"] / max(result["connected"], 1) / opts.seconds
    print()
    print(f"clients connected            {result['connected']}/{opts.clients}")
    print(f"events sent                  {sent['task_events']:,} at {sent['rate']:,.0f}/s")
    print(f"'tasks' messages timed       {len(lat):,} ({per_client:.1f} messages/client/s)")
    print(f"update latency p50           {p50:.3f} s")
    print(f"update latency p95           {p95:.3f} s   target < 1 s")
    print(f"update latency max           {max(lat, default=float('nan')):.3f} s")
    ages = result["ages"]
    print(f"screen age before an update  p50 {percentile(ages, 0.5):.3f} s, p95 "
          f"{percentile(ages, 0.95):.3f} s (the newest row's age when the next came: "
          "counts the gaps between updates too)")
    wl = result["write_lags"]
    print(f"collector write lag p50/max  {percentile(wl, 0.5):.2f} s / "
          f"{max(wl, default=float('nan')):.2f} s (receive to commit, from collector_status)")
    print(f"web process peak RSS         {fmt_mb(result['peak_rss'])}")
    print(f"web process CPU              {result['cpu'] / result['elapsed']:.0%} of one core")
    print(f"client processes CPU         {result['client_cpu'] / result['elapsed']:.0%} of one "
          "core (near 200% means the clients, not Lookout, set the latency)")
    if result["failures"]:
        print(f"client failures (first)      {result['failures'][:3]}")


if __name__ == "__main__":
    main()
