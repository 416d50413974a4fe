"""Ingest benchmark: how many Celery events Lookout keeps, against Flower, same load.

Scenarios, each run against Lookout's collector and then against Flower:
  burst      N task events sent as fast as the generator can; events kept, loss, time
             to drain, peak RSS of the consumer's process tree.
  sustained  fixed rates, stepped up; a step passes when every event is kept and the
             consumer has caught up within --catch-up seconds of the last send.
The floor (Redis only) is a bare redis-py subscriber that decodes every event and keeps
nothing (benchmarks/floor.py): the least CPU per event any consumer can spend. With
--backend postgres, Lookout's CPU includes the PostgreSQL server's over the burst.
Usage: python benchmarks/ingest.py [--broker amqp://guest:guest@127.0.0.1:5672//]
       [--backend postgres] [--quick]. Targets are printed, never asserted.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (
    Children,
    TreeSampler,
    dedicated_broker,
    fmt_mb,
    machine_load,
    run_generators,
)
from targets import FloorTarget, FlowerTarget, LookoutTarget

GEN_CAPACITY = 25_000  # events/s one generator process sends comfortably on this box


def settle_one(target, base: dict, expected: int, quiet: float, timeout: float):
    """Poll until the target has `expected` more events or was idle `quiet` s.

    Returns the final counts and the time of the last change.
    """
    last, changed_at = None, time.time()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and target.proc.poll() is None:
        try:
            now = target.counts()
        except OSError:  # a consumer too busy to answer is not idle
            time.sleep(0.25)
            continue
        if now != last:
            last, changed_at = now, time.time()
        kept = now["task_events"] - base["task_events"]
        # Lookout: every received event (worker events too) must be written as well.
        written = now.get("received", 0) <= now.get("stored", 0) + now.get("duplicates", 0)
        if (kept >= expected and written) or time.time() - changed_at > quiet:
            break
        time.sleep(0.1)
    return last, changed_at


def settle(targets, bases, expected: int, quiet: float, timeout: float) -> list:
    """`settle_one` for every target in its own thread: a slow one delays no other."""
    pool = ThreadPoolExecutor(len(targets))
    try:
        return list(pool.map(lambda tb: settle_one(tb[0], tb[1], expected, quiet, timeout),
                             zip(targets, bases)))
    finally:
        pool.shutdown(wait=False)  # on Ctrl-C too; the threads end with their targets


def burst(targets, children, broker, opts, log) -> dict:
    """Send --events as fast as possible; per target: kept, loss, drain time, RSS, CPU."""
    bases = [t.counts() for t in targets]
    with contextlib.ExitStack() as stack:
        usage = [stack.enter_context(TreeSampler(t.proc.pid)) for t in targets]
        server = stack.enter_context(PostgresCPU()) if opts.backend == "postgres" else None
        sent = run_generators(children, broker, opts.generators, events=opts.events,
                              log=log)
        settled = settle(targets, bases, sent["task_events"], quiet=5.0,
                         timeout=opts.drain_timeout)
    results = {}
    for target, base, rss, (final, done_at) in zip(targets, bases, usage, settled):
        kept = final["task_events"] - base["task_events"]
        cpu = rss.cpu + (server.cpu if server is not None and target.name == "Lookout" else 0)
        results[target.name] = {
            "sent": sent["task_events"], "send_rate": sent["rate"], "kept": kept,
            "loss": 1 - kept / sent["task_events"], "drain": done_at - sent["end"],
            "total_time": done_at - sent["begin"], "peak_rss": rss.peak,
            "cpu_per_1k": 1000 * cpu / max(kept, 1),
            "worker_events_sent": sent["worker_events"], "tasks_sent": sent["tasks"],
            "counters": {k: final[k] - base[k] for k in final if k != "write_lag"}}
    return results


def step(targets, children, broker, rate, opts, log) -> dict:
    """One sustained step: `rate` events/s for --step-seconds, then wait to catch up."""
    bases = [t.counts() for t in targets]
    holder: dict = {}
    gens = max(1, math.ceil(rate / GEN_CAPACITY))
    thread = threading.Thread(target=lambda: holder.update(run_generators(
        children, broker, gens, rate=rate, duration=opts.step_seconds, log=log)),
        daemon=True)
    max_lag = [0.0] * len(targets)
    # The status row is rewritten every second: before that it shows the last step's lag.
    fresh_from = time.time() + 2.5
    with contextlib.ExitStack() as stack:
        usage = [stack.enter_context(TreeSampler(t.proc.pid)) for t in targets]
        thread.start()
        while thread.is_alive():
            for i, target in enumerate(targets):
                with contextlib.suppress(OSError):
                    if target.reports_lag and time.time() > fresh_from:
                        lag = target.counts().get("write_lag", 0.0)
                        max_lag[i] = max(max_lag[i], lag)
            thread.join(0.5)
        if not holder:
            raise RuntimeError("load generator failed")
        settled = settle(targets, bases, holder["task_events"], quiet=opts.catch_up,
                         timeout=opts.catch_up + 30)
    results = {}
    for i, (target, base, (final, done_at)) in enumerate(zip(targets, bases, settled)):
        kept = final["task_events"] - base["task_events"]
        catch_up = max(0.0, done_at - holder["end"])
        lag = max(max_lag[i], final.get("write_lag", 0.0))
        ok = kept >= holder["task_events"] and catch_up <= opts.catch_up
        results[target.name] = result = {
            "rate": rate, "achieved": holder["rate"], "sent": holder["task_events"],
            "kept": kept, "catch_up": catch_up, "max_write_lag": lag, "ok": ok,
            "cpu_per_1k": 1000 * usage[i].cpu / max(kept, 1), "peak_rss": usage[i].peak}
        print(f"  {target.name:8}{rate:>8,.0f}/s: sent {result['sent']:,} at "
              f"{result['achieved']:,.0f}/s, kept {kept:,}, caught up in {catch_up:.1f} s, "
              f"write lag <= {lag:.2f} s, {result['cpu_per_1k']:.2f} CPU s/1k events"
              f" -> {'ok' if ok else 'FAIL'}", flush=True)
    return results


def sustained(targets, children, broker, opts, log) -> dict:
    """Step up through --rates until every target failed once, then narrow down.

    A target that failed the first step is retried at halved rates until one passes;
    then one step midway between each target's best pass and its first failure.
    """
    steps = {t.name: [] for t in targets}
    passed = {t.name: 0.0 for t in targets}
    failed: dict[str, float | None] = {t.name: None for t in targets}

    def attempt(rate: float) -> None:
        for name, result in step(targets, children, broker, rate, opts, log).items():
            steps[name].append(result)
            if result["ok"]:
                passed[name] = max(passed[name], rate)
            elif failed[name] is None or rate < failed[name]:
                failed[name] = rate

    for rate in opts.rates:
        attempt(rate)
        if all(f is not None for f in failed.values()):
            break
    while True:  # halve for whoever has not passed anything yet
        low = [f / 2 for n, f in failed.items() if f is not None and not passed[n]
               and f / 2 >= 500 and f / 2 not in [s["rate"] for s in steps[n]]]
        if not low:
            break
        attempt(max(low))
    for mid in sorted({(passed[n] + f) / 2 for n, f in failed.items()
                       if f is not None and passed[n] and f - passed[n] > 1000}):
        attempt(mid)
    return {name: {"steps": steps[name],
                   "max_rate": max([s["achieved"] for s in steps[name] if s["ok"]],
                                   default=0.0)}
            for name in steps}


class PostgresCPU:
    """CPU seconds all `postgres` processes used while open (the server's share of a
    PostgreSQL store's cost; the benchmark's own count queries are in it too, a little)."""

    def __enter__(self) -> "PostgresCPU":
        self.start, self.cpu = self._total(), 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.cpu = self._total() - self.start

    @staticmethod
    def _total() -> float:
        import psutil

        total = 0.0
        for proc in psutil.process_iter(["name", "cpu_times"]):
            times = proc.info["cpu_times"]
            if proc.info["name"] and proc.info["name"].startswith("postgres") and times:
                total += times.user + times.system
        return total


@contextlib.contextmanager
def database(backend: str, workdir: Path):
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'lookout.db'}"
        return
    import psycopg

    name = f"lookout_bench_{int(time.time())}"
    admin = "postgresql://postgres@127.0.0.1:5432/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_target(kind: str, children: Children, broker: str, opts, workdir: Path,
                 stack: contextlib.ExitStack):
    if kind == "lookout":
        db = stack.enter_context(database(opts.backend, workdir))
        target = LookoutTarget(children, broker, db, workdir)
    elif kind == "floor":
        target = FloorTarget(children, broker, workdir)
    else:
        target = FlowerTarget(children, broker, workdir)
    stack.callback(target.close)
    return target


def run_targets(kinds: list[str], broker_url: str, opts, workdir: Path) -> dict:
    """Fresh broker namespace, fresh consumers, both scenarios, everything cleaned up.

    With several kinds, they consume the very same events side by side.
    """
    with Children() as children, dedicated_broker(broker_url) as broker, \
            contextlib.ExitStack() as stack:
        log = workdir / "loadgen.log"
        targets = [start_target(kind, children, broker, opts, workdir, stack)
                   for kind in kinds]
        names = " + ".join(t.name for t in targets)
        print(f"{names}: burst of {opts.events:,} events; {machine_load()}", flush=True)
        results = {t.name: {} for t in targets}
        for name, b in burst(targets, children, broker, opts, log).items():
            results[name] = {"burst": b, "peak_rss": b["peak_rss"]}
            print(f"  {name:8}sent {b['sent']:,} at {b['send_rate']:,.0f}/s, kept "
                  f"{b['kept']:,} ({b['loss']:.1%} lost), drained {b['drain']:.1f} s after "
                  f"the last send, peak RSS {fmt_mb(b['peak_rss'])}, "
                  f"{b['cpu_per_1k']:.2f} CPU s/1k events", flush=True)
        if opts.rates:
            print(f"{names}: sustained steps; {machine_load()}", flush=True)
            for name, sus in sustained(targets, children, broker, opts, log).items():
                results[name]["sustained"] = sus
                results[name]["peak_rss"] = max(
                    [results[name]["peak_rss"]] + [s["peak_rss"] for s in sus["steps"]])
        return {kind: results[t.name] for kind, t in zip(kinds, targets)}


def table(results: dict, opts) -> str:
    look, flow, floor = (results.get(k) for k in ("lookout", "flower", "floor"))

    def cell(res, fn):
        return "-" if res is None else fn(res)

    def ratio(fn, other):
        if fn and look and other and fn(other):
            return f"{fn(look) / fn(other):.2f}x"
        return ""

    cpu = lambda r: r["burst"]["cpu_per_1k"]  # noqa: E731
    rows = [
        ("burst: task events sent", lambda r: f"{r['burst']['sent']:,}", None, ""),
        ("burst: send rate (ev/s)", lambda r: f"{r['burst']['send_rate']:,.0f}", None, ""),
        ("burst: events stored/seen", lambda r: f"{r['burst']['kept']:,}",
         lambda r: r["burst"]["kept"], ""),
        ("burst: loss", lambda r: f"{r['burst']['loss']:.2%}", None, "0% (Lookout)"),
        ("burst: drained after last send", lambda r: f"{r['burst']['drain']:.1f} s", None, ""),
        ("sustained max rate, 0 loss (ev/s)",
         lambda r: f"{r['sustained']['max_rate']:,.0f}" if "sustained" in r else "-",
         lambda r: r.get("sustained", {}).get("max_rate", 0), ""),
        ("peak RSS", lambda r: fmt_mb(r["peak_rss"]), lambda r: r["peak_rss"],
         "< 200 MB (Lookout)"),
        ("CPU s per 1k events (burst)", lambda r: f"{cpu(r):.3f}", cpu,
         "<= 0.2x Flower, <= 2x floor"),
        ("=> events/s one free core allows", lambda r: f"{1000 / cpu(r):,.0f}",
         lambda r: 1 / cpu(r), ""),
    ]
    head = (f"{'':36}{'Lookout':>12}{'Flower':>12}{'floor':>12}{'L/Flower':>10}"
            f"{'L/floor':>9}   target")
    lines = [head, "-" * len(head)]
    for label, fmt, fn, goal in rows:
        lines.append(f"{label:36}{cell(look, fmt):>12}{cell(flow, fmt):>12}"
                     f"{cell(floor, fmt):>12}{ratio(fn, flow):>10}{ratio(fn, floor):>9}"
                     f"   {goal}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14",
                        help="redis://... (DB 14 is used) or amqp://... (a vhost is made)")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--targets", default="lookout,flower,floor",
                        help="any of lookout, flower, floor (floor: Redis only)")
    parser.add_argument("--together", action="store_true",
                        help="run the targets side by side on the same events: a fair "
                             "comparison when the machine is shared")
    parser.add_argument("--events", type=int, default=150_000, help="burst size")
    parser.add_argument("--generators", type=int, default=2,
                        help="load generator processes for the burst (2 saturate 2 cores)")
    parser.add_argument("--rates", default="5000,10000,20000,40000",
                        help="sustained steps in events/s ('' to skip)")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--catch-up", type=float, default=3.0,
                        help="a step passes if all is kept within this many s of the end")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--quick", action="store_true", help="small smoke run (~1 min)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.events, opts.rates, opts.step_seconds = 20_000, "2000,5000", 3.0
    opts.rates = [float(r) for r in opts.rates.split(",") if r.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="lookout-bench-"))
    print(f"broker {opts.broker}, store {opts.backend}, logs in {workdir}", flush=True)
    results = {}
    try:
        kinds = [t.strip() for t in opts.targets.split(",") if t.strip()]
        if not opts.broker.startswith("redis"):
            kinds = [k for k in kinds if k != "floor"]
        if opts.together:
            results.update(run_targets(kinds, opts.broker, opts, workdir))
        else:
            for kind in kinds:
                results.update(run_targets([kind], opts.broker, opts, workdir))
    except KeyboardInterrupt:
        print("interrupted; children stopped")
        raise SystemExit(130)
    print()
    print(table(results, opts))
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
