"""`make demo`: a living dashboard in a minute, on the local Redis.

Starts two workers and beat on the demo app (demo/proj.py), then `lookout run -A proj`
(collector + web, SQLite under lookout-data/): Lookout takes the broker from the app, as it
would from yours. Stops every one of them on Ctrl-C or SIGTERM, or as soon as any of them
dies, so nothing is left running behind the user. Not part of the package: run it from a
checkout (`make demo`, or `python demo/run.py`).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
DATA = HERE.parent / "lookout-data"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python demo/run.py", description=__doc__)
    parser.add_argument("--broker", default=os.environ.get("LOOKOUT_DEMO_BROKER",
                                                           "redis://127.0.0.1:6379/0"))
    parser.add_argument("--data", type=Path, default=DATA,
                        help="folder for the SQLite store, beat schedule and logs")
    parser.add_argument("--database", help="SQLAlchemy URL (default: SQLite in --data)")
    parser.add_argument("--port", type=int, default=5555)
    args = parser.parse_args(argv)
    args.database = args.database or f"sqlite:///{args.data.resolve() / 'demo.db'}"
    return args


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    celery = [str(BIN / "celery"), "-A", "proj"]
    quiet = ["-l", "WARNING"]
    return {
        "worker-a": [*celery, "worker", "-E", "-n", "demo-a@%h", "-Q", "celery", "-c", "2",
                     *quiet],
        "worker-b": [*celery, "worker", "-E", "-n", "demo-b@%h", "-Q", "celery,slow",
                     "-c", "3", *quiet],
        "beat": [*celery, "beat", "-s", str(args.data / "celerybeat-schedule"), *quiet],
        # -A: the broker and the beat schedule (Schedules page) come from the demo app.
        "lookout": [str(BIN / "lookout"), "run", "-A", "proj", "--database", args.database,
                    "--data-dir", str(args.data), "--port", str(args.port), "--no-auth"],
    }


def check_redis(url: str) -> str | None:
    """None if the broker answers, else a one-line reason."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot run the demo"
        return f"{type(exc).__name__}: {exc}"
    return None


def stop_all(processes: dict[str, subprocess.Popen], timeout: float = 15.0) -> None:
    """SIGTERM every process group (workers finish their current task), then SIGKILL."""
    for proc in processes.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in processes.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in processes.values():  # stragglers, and prefork children left in each group
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = check_redis(args.broker)
    if problem:
        print(f"demo: cannot reach Redis at {args.broker} ({problem}); start it with "
              "`make services`", file=sys.stderr)
        return 2
    args.data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LOOKOUT_DEMO_BROKER": args.broker}
    env.pop("LOOKOUT_BROKER_URL", None)  # the demo app's broker, nothing else
    stopping = []

    def request_stop(signum, _frame):
        stopping.append(signum)

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands(args).items():
            # Celery's logs (full of the demo's deliberate failures) go to files; only
            # Lookout talks on the terminal.
            output = None if name == "lookout" else open(args.data / f"demo-{name}.log", "wb")
            # A session of its own: Ctrl-C reaches only us, and we stop them in order.
            processes[name] = subprocess.Popen(command, cwd=HERE, env=env, stdout=output,
                                               stderr=subprocess.STDOUT if output else None,
                                               start_new_session=True)
            if output:
                output.close()  # the child has its own copy
        print(f"\nLookout demo: open http://127.0.0.1:{args.port}  (Ctrl-C stops everything;"
              f" worker and beat logs in {args.data})\n", flush=True)
        while not stopping:
            dead = [name for name, proc in processes.items() if proc.poll() is not None]
            if dead:
                print(f"demo: {', '.join(dead)} exited; stopping the rest", file=sys.stderr)
                return 1
            time.sleep(0.5)
        print("demo: stopping workers, beat and Lookout…", flush=True)
        return 0
    finally:
        stop_all(processes)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
