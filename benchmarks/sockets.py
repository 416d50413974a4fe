"""Socket benchmark: does HTTP stay responsive while hundreds of browsers hold live sockets?

Starts the production layout from the README (`gunicorn -w 1 --threads 600`, default
LOOKOUT_MAX_SOCKETS=500) on a temporary SQLite store with --rows task rows and auth on,
then opens authenticated python-socketio clients in steps (0, 100, 500, then --over past
the cap), each joined to the room one page joins ("overview" or "tasks", alternately; 10
clients per API token, so the per-client cap of 20 is not what limits them). Clients
connect as browsers do: long-polling, then the websocket upgrade. At each step it times
--requests sequential GET /api/v1/tasks (bearer token, a new connection each, 5 s
timeout) and reads the worker's threads and RSS. Then, on a fresh server, cap + 100
unauthenticated clients that sit on the default namespace "/" (issue 13); and unless
--no-old, the former flags (`--threads 100`, no cap) against 100 of those.
Usage: python benchmarks/sockets.py [--steps 0,100,500] [--requests 200] [--no-old] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from common import BENCH_DIR, VENV_BIN, Children, fmt_mb, free_port, machine_load, wait_for

NAMESPACE = "/live"
PAGE_ROOMS = ("overview", "tasks")  # the overview page joins one, the tasks page the other
CLIENTS_PER_PROC = 100
CLIENTS_PER_TOKEN = 10
REQUEST_TIMEOUT = 5.0


# -- client side: its own processes, so 1,000 client threads do not slow the measuring one

def run_clients(url: str, count: int, offset: int, tokens_file: str) -> None:
    """Connect `count` clients, print what happened as one JSON line, hold until stdin ends.

    tokens_file "-": unauthenticated clients on the default namespace, which needs no login
    (the sockets of issue 13); they join nothing and just hold their connection."""
    import socketio

    squat = tokens_file == "-"
    tokens = [] if squat else json.loads(Path(tokens_file).read_text())
    clients, refused, lock = [], {}, threading.Lock()

    def connect(index: int) -> None:
        client = socketio.Client(reconnection=False, handle_sigint=False,
                                 websocket_extra_options={"skip_utf8_validation": True})
        errors: list = []
        namespace = "/" if squat else NAMESPACE
        client.on("connect_error", errors.append, namespace=namespace)
        try:
            # Long-polling first, then the websocket upgrade, as browsers connect: a
            # handshake refused for a full server then says why.
            # The token in the header: handshakes without an identity are refused.
            headers = {} if squat else {"Authorization": "Bearer " + tokens[
                index // CLIENTS_PER_TOKEN % len(tokens)]}
            client.connect(url, namespaces=[namespace], wait_timeout=30, headers=headers)
            if squat:
                with lock:
                    clients.append(client)
                return
            room = PAGE_ROOMS[index % len(PAGE_ROOMS)]
            reply = client.call("subscribe", {"room": room}, namespace=NAMESPACE, timeout=30)
            if not (reply or {}).get("ok"):
                raise RuntimeError(f"subscribe {room}: {reply}")
            with lock:
                clients.append(client)
        except Exception as exc:  # noqa: BLE001 - counted and reported, not fatal
            reason = errors[0].get("message") if errors and isinstance(errors[0], dict) \
                else f"{exc.__class__.__name__}: {exc}"
            with lock:
                refused[reason] = refused.get(reason, 0) + 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(connect, range(offset, offset + count)))
    print(json.dumps({"connected": len(clients), "refused": refused}), flush=True)
    sys.stdin.read()  # the parent closes our stdin when the step is over
    os._exit(0)  # no polite disconnects: the server sees the sockets close either way


class ClientGroup:
    """Client processes of one layout; killing them closes all their sockets at once."""

    def __init__(self, children: Children, url: str, tokens_file: Path | str, workdir: Path):
        self.children, self.url, self.workdir = children, url, workdir
        self.tokens_file = tokens_file  # "-": unauthenticated clients on "/"
        self.procs: list[subprocess.Popen] = []
        self.opened = 0

    def add(self, count: int) -> dict:
        """Open `count` more clients (CLIENTS_PER_PROC per process); what they reported."""
        started = []
        while count > 0:
            n = min(count, CLIENTS_PER_PROC)
            proc = self.children.start(
                [sys.executable, str(BENCH_DIR / "sockets.py"), "--as-clients", self.url,
                 str(n), str(self.opened), str(self.tokens_file)],
                log=self.workdir / "clients.log", stdin=subprocess.PIPE,
                stdout=subprocess.PIPE)
            self.procs.append(proc)
            started.append(proc)
            self.opened += n
            count -= n
        total = {"connected": 0, "refused": {}}
        for proc in started:
            report = json.loads(proc.stdout.readline() or '{"connected": 0, "refused": {}}')
            total["connected"] += report["connected"]
            for reason, n in report["refused"].items():
                total["refused"][reason] = total["refused"].get(reason, 0) + n
        return total

    def close(self) -> None:
        for proc in self.procs:
            proc.stdin.close()
            self.children.stop(proc)
        self.procs, self.opened = [], 0


# -- the server and what it answers ------------------------------------------------------

def prepare_store(workdir: Path, rows: int, tokens: int) -> tuple[str, list[str]]:
    """A migrated SQLite store with `rows` task rows and `tokens` viewer tokens."""
    from query import fill

    from lookout.core.store import db as store_db
    from lookout.dashboard.auth.accounts import AccountStore

    url = f"sqlite:///{workdir / 'lookout.db'}"
    store_db.upgrade(url)
    fill(url, rows, refill=True)
    engine = store_db.make_engine(url)
    accounts = AccountStore(engine)
    secrets = [accounts.add_token(f"bench-{i}", "viewer")[1] for i in range(tokens)]
    engine.dispose()
    return url, secrets


def start_gunicorn(children: Children, database: str, threads: int, max_sockets: int,
                   workdir: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    env = {**os.environ, "LOOKOUT_DATABASE_URL": database, "LOOKOUT_SECRET_KEY": "bench",
           "LOOKOUT_ALLOWED_HOSTS": "127.0.0.1", "LOOKOUT_MAX_SOCKETS": str(max_sockets),
           "LOOKOUT_MESSAGE_QUEUE": "", "LOOKOUT_CELERY_APP": ""}
    proc = children.start(
        [str(VENV_BIN / "gunicorn"), "-w", "1", "--threads", str(threads),
         "-b", f"127.0.0.1:{port}", "lookout.dashboard.wsgi:app_from_environment()"],
        log=workdir / f"gunicorn-{threads}.log", env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: proc.poll() is None and get(url + "/login", None)[0] == 200, 60, 0.2,
             "gunicorn")
    return url, proc


def get(url: str, token: str | None) -> tuple[int | None, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=REQUEST_TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:  # timed out (every thread busy) or refused
        return None, b""


def time_requests(url: str, token: str, count: int) -> dict:
    """Sequential GETs; gives up after 3 timeouts in a row (the server is starved)."""
    latencies, timeouts, in_a_row = [], 0, 0
    for _ in range(count):
        began = time.perf_counter()
        status, _ = get(url + "/api/v1/tasks", token)
        if status == 200:
            latencies.append(time.perf_counter() - began)
            in_a_row = 0
        else:
            timeouts += 1
            in_a_row += 1
            if in_a_row == 3:
                break
    return {"ok": len(latencies), "timeouts": timeouts,
            "p50": percentile(latencies, 0.50), "p95": percentile(latencies, 0.95),
            "max": max(latencies, default=float("nan"))}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def live_counts(url: str, token: str) -> dict:
    """The worker's own count of sockets (/healthz detail; 503 here: no collector)."""
    status, body = get(url + "/healthz", token)
    try:
        return json.loads(body).get("live") or {}
    except ValueError:
        return {}


def worker_stats(master: subprocess.Popen) -> tuple[int, int]:
    """(threads, RSS bytes) of gunicorn's worker process."""
    try:
        worker = psutil.Process(master.pid).children()[0]
        return worker.num_threads(), worker.memory_info().rss
    except (psutil.Error, IndexError):
        return 0, 0


# -- orchestration -----------------------------------------------------------------------

def run_layout(children: Children, workdir: Path, database: str, token: str,
               clients: Path | str, threads: int, max_sockets: int, plan: list[tuple[int, str]],
               requests: int) -> list[dict]:
    """One gunicorn layout through `plan` ((sockets asked, note) steps); a row per step."""
    url, master = start_gunicorn(children, database, threads, max_sockets, workdir)
    group = ClientGroup(children, url, clients, workdir)
    rows, asked = [], 0
    layout = f"--threads {threads}, cap {max_sockets or 'none'}"
    try:
        get(url + "/api/v1/tasks", token)  # warm up: first query, caches
        for target, note in plan:
            report = group.add(target - asked) if target > asked else {"connected": 0,
                                                                        "refused": {}}
            asked = target
            timing = time_requests(url, token, requests)
            live = live_counts(url, token)
            threads_now, rss = worker_stats(master)
            row = {"layout": layout, "asked": asked, "note": note, "held": live.get("sockets"),
                   "refused": report["refused"], **timing,
                   "worker_threads": threads_now, "rss": rss}
            rows.append(row)
            print(format_row(row), flush=True)
            if timing["ok"] == 0:
                break  # starved: more sockets only make it worse
    finally:
        group.close()
        children.stop(master)
    return rows


def format_row(row: dict) -> str:
    def ms(value: float) -> str:
        return "-" if value != value else f"{value * 1000:.0f} ms"
    refused = sum(row["refused"].values())
    return (f"| {row['layout']} | {row['asked']}{row['note']}"
            f" | {row['held'] if row['held'] is not None else '-'} | {refused} | {ms(row['p50'])}"
            f" | {ms(row['p95'])} | {ms(row['max'])} | {row['timeouts']} of "
            f"{row['ok'] + row['timeouts']} | {row['worker_threads']} | {fmt_mb(row['rss'])} |")


HEADER = ("| layout | sockets asked | held | refused | GET /api/v1/tasks p50 | p95 | max "
          "| timeouts (5 s) | worker threads | worker RSS |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="0,100,500", help="sockets open at each step")
    parser.add_argument("--over", type=int, default=20, help="attempts past the cap")
    parser.add_argument("--requests", type=int, default=200, help="GETs timed per step")
    parser.add_argument("--rows", type=int, default=20_000, help="task rows in the store")
    parser.add_argument("--threads", type=int, default=600)
    parser.add_argument("--max-sockets", type=int, default=500)
    parser.add_argument("--no-old", dest="old", action="store_false",
                        help="skip the former layout (--threads 100, no cap)")
    parser.add_argument("--quick", action="store_true",
                        help="steps 0,50,100 with --threads 150 and a cap of 100; 50 GETs")
    parser.add_argument("--as-clients", nargs=4, metavar=("URL", "N", "OFFSET", "TOKENS"),
                        help=argparse.SUPPRESS)  # internal: one client process
    opts = parser.parse_args(argv)
    if opts.as_clients:
        url, count, offset, tokens_file = opts.as_clients
        run_clients(url, int(count), int(offset), tokens_file)
        return
    steps = [int(n) for n in opts.steps.split(",")]
    old_threads = 100
    if opts.quick:
        steps, old_threads, opts.threads, opts.max_sockets, opts.requests = \
            [0, 50, 100], 50, 150, 100, 50
    workdir = Path(tempfile.mkdtemp(prefix="lookout-sockets-"))
    print(f"logs in {workdir}; {machine_load()}", flush=True)
    database, tokens = prepare_store(
        workdir, opts.rows, max(1, -(-(max(steps) + opts.over) // CLIENTS_PER_TOKEN)))
    tokens_file = workdir / "tokens.json"
    tokens_file.write_text(json.dumps(tokens))
    rows = []
    print(HEADER, flush=True)
    authenticated = [(n, "") for n in steps] + (
        [(steps[-1] + opts.over, " (past the cap)")] if opts.over else [])
    squatters = " unauthenticated, on \"/\""
    try:
        with Children() as children:
            rows += run_layout(children, workdir, database, tokens[0], tokens_file,
                               opts.threads, opts.max_sockets, authenticated, opts.requests)
            rows += run_layout(children, workdir, database, tokens[0], "-", opts.threads,
                               opts.max_sockets, [(opts.max_sockets + 100, squatters)],
                               opts.requests)
            if opts.old:
                rows += run_layout(children, workdir, database, tokens[0], "-", old_threads,
                                   0, [(0, ""), (old_threads, squatters)], opts.requests)
    except KeyboardInterrupt:
        print("interrupted; children stopped")
        return
    print(f"\n{machine_load()}")
    for row in rows:
        for reason, n in row["refused"].items():
            print(f"refused at {row['asked']} ({row['layout']}): {n} x {reason!r}")


if __name__ == "__main__":
    main()
