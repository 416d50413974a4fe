"""Ingest benchmark: how many Celery events Lookout keeps, against Flower, same load.

Scenarios, each run against Lookout's collector and then against Flower:
  burst      N task events sent as fast as the generator can; events kept, loss, time
             to drain, peak RSS of the consumer's process tree.
  sustained  fixed rates, stepped up; a step passes when every event is kept and the
             consumer has caught up within --catch-up seconds of the last send.
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
from pathlib import Path

from common import (Children, TreeSampler, dedicated_broker, fmt_mb, machine_load,
                    run_generators)
from targets import FlowerTarget, LookoutTarget

GEN_CAPACITY = 25_000  # events/s one generator process sends comfortably on this box


def settle(target, base: dict, expected: int, quiet: float, timeout: float):
    """Poll until the target has `expected` more events or has been idle `quiet` s."""
    last, changed_at = None, time.time()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            now = target.counts()
        except OSError:  # a consumer too busy to answer is not idle
            time.sleep(0.25)
            continue
        if now != last:
            last, changed_at = now, time.time()
        kept = now["task_events"] - base["task_events"]
        if kept >= expected and now.get("received", 0) <= now.get("stored", 0) + \
                now.get("duplicates", 0):
            return now, changed_at
        if time.time() - changed_at > quiet:
            break
        time.sleep(0.1)
    return last, changed_at


def burst(target, children, broker, opts, log) -> dict:
    base = target.counts()
    with TreeSampler(target.proc.pid) as rss:
        sent = run_generators(children, broker, opts.generators, events=opts.events,
                              log=log)
        final, done_at = settle(target, base, sent["task_events"], quiet=5.0,
                                timeout=opts.drain_timeout)
    kept = final["task_events"] - base["task_events"]
    return {"sent": sent["task_events"], "send_rate": sent["rate"], "kept": kept,
            "loss": 1 - kept / sent["task_events"], "drain": done_at - sent["end"],
            "total_time": done_at - sent["begin"], "peak_rss": rss.peak,
            "cpu_per_1k": 1000 * rss.cpu / max(kept, 1),
            "worker_events_sent": sent["worker_events"], "tasks_sent": sent["tasks"],
            "counters": {k: final[k] - base[k] for k in final if k != "write_lag"}}


def step(target, children, broker, rate, opts, log) -> dict:
    """One sustained step: `rate` events/s for --step-seconds, then wait to catch up."""
    base = target.counts()
    holder: dict = {}
    gens = max(1, math.ceil(rate / GEN_CAPACITY))
    thread = threading.Thread(target=lambda: holder.update(run_generators(
        children, broker, gens, rate=rate, duration=opts.step_seconds, log=log)))
    max_lag = 0.0
    # The status row is rewritten every second: before that it shows the last step's lag.
    fresh_from = time.time() + 2.5
    with TreeSampler(target.proc.pid) as usage:
        thread.start()
        while thread.is_alive():
            with contextlib.suppress(OSError):
                if time.time() > fresh_from:
                    max_lag = max(max_lag, target.counts().get("write_lag", 0.0))
            thread.join(0.5)
        if not holder:
            raise RuntimeError("load generator failed")
        final, done_at = settle(target, base, holder["task_events"], quiet=opts.catch_up,
                                timeout=opts.catch_up + 30)
    kept = final["task_events"] - base["task_events"]
    catch_up = max(0.0, done_at - holder["end"])
    max_lag = max(max_lag, final.get("write_lag", 0.0))
    ok = kept >= holder["task_events"] and catch_up <= opts.catch_up
    return {"rate": rate, "achieved": holder["rate"], "sent": holder["task_events"],
            "kept": kept, "catch_up": catch_up, "max_write_lag": max_lag, "ok": ok,
            "cpu_per_1k": 1000 * usage.cpu / max(kept, 1), "peak_rss": usage.peak}


def sustained(target, children, broker, opts, log) -> dict:
    """Step up through --rates until one fails, then narrow down once between pass/fail."""
    steps, best = [], 0.0

    def attempt(rate: float) -> bool:
        nonlocal best
        result = step(target, children, broker, rate, opts, log)
        steps.append(result)
        print(f"  {target.name} {rate:>8,.0f}/s: sent {result['sent']:,} at "
              f"{result['achieved']:,.0f}/s, kept {result['kept']:,}, caught up in "
              f"{result['catch_up']:.1f} s, write lag <= {result['max_write_lag']:.2f} s, "
              f"{result['cpu_per_1k']:.2f} CPU s/1k events"
              f" -> {'ok' if result['ok'] else 'FAIL'}", flush=True)
        if result["ok"]:
            best = max(best, result["achieved"])
        return result["ok"]

    passed, failed = 0.0, None
    for rate in opts.rates:
        if not attempt(rate):
            failed = rate
            break
        passed = rate
    while failed is not None and not passed and failed / 2 >= 500:
        if attempt(failed / 2):  # nothing passed yet: halve until a rate does
            passed = failed / 2
        else:
            failed /= 2
    if failed is not None and passed and failed - passed > 1000:
        attempt((passed + failed) / 2)
    return {"steps": steps, "max_rate": best}


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


def run_target(kind: str, broker_url: str, opts, workdir: Path) -> dict:
    """Fresh broker namespace, fresh consumer, both scenarios, everything cleaned up."""
    with Children() as children, dedicated_broker(broker_url) as broker, \
            contextlib.ExitStack() as stack:
        log = workdir / "loadgen.log"
        if kind == "lookout":
            db = stack.enter_context(database(opts.backend, workdir))
            target = LookoutTarget(children, broker, db, workdir)
        else:
            target = FlowerTarget(children, broker, workdir)
        stack.callback(target.close)
        print(f"{target.name}: burst of {opts.events:,} events; {machine_load()}", flush=True)
        result = {"burst": burst(target, children, broker, opts, log)}
        b = result["burst"]
        print(f"  sent {b['sent']:,} at {b['send_rate']:,.0f}/s, kept {b['kept']:,} "
              f"({b['loss']:.1%} lost), drained {b['drain']:.1f} s after the last send, "
              f"peak RSS {fmt_mb(b['peak_rss'])}, {b['cpu_per_1k']:.2f} CPU s/1k events",
              flush=True)
        result["peak_rss"] = b["peak_rss"]
        if opts.rates:
            print(f"{target.name}: sustained steps; {machine_load()}", flush=True)
            result["sustained"] = sustained(target, children, broker, opts, log)
            result["peak_rss"] = max([b["peak_rss"]] + [
                s["peak_rss"] for s in result["sustained"]["steps"]])
        return result


def table(results: dict, opts) -> str:
    look, flow = results.get("lookout"), results.get("flower")

    def cell(res, fn):
        return "-" if res is None else fn(res)

    rows = [
        ("burst: task events sent", lambda r: f"{r['burst']['sent']:,}", None, ""),
        ("burst: send rate (ev/s)", lambda r: f"{r['burst']['send_rate']:,.0f}", None, ""),
        ("burst: events stored/seen", lambda r: f"{r['burst']['kept']:,}",
         lambda r: r["burst"]["kept"], ""),
        ("burst: loss", lambda r: f"{r['burst']['loss']:.2%}", None, "0% (Lookout)"),
        ("burst: drained after last send", lambda r: f"{r['burst']['drain']:.1f} s", None, ""),
        ("sustained max rate, 0 loss (ev/s)",
         lambda r: f"{r['sustained']['max_rate']:,.0f}" if "sustained" in r else "-",
         lambda r: r.get("sustained", {}).get("max_rate", 0), ">= 5x Flower"),
        ("peak RSS", lambda r: fmt_mb(r["peak_rss"]), lambda r: r["peak_rss"],
         "< 200 MB (Lookout)"),
        ("CPU s per 1k events (burst)", lambda r: f"{r['burst']['cpu_per_1k']:.2f}",
         lambda r: r["burst"]["cpu_per_1k"], ""),
        ("=> events/s one free core allows", lambda r: f"{1000 / r['burst']['cpu_per_1k']:,.0f}",
         lambda r: 1 / r["burst"]["cpu_per_1k"], ""),
    ]
    head = f"{'':36}{'Lookout':>14}{'Flower':>14}{'Lookout/Flower':>16}   target"
    lines = [head, "-" * len(head)]
    for label, fmt, ratio, goal in rows:
        rate = ""
        if ratio and look and flow and ratio(flow):
            rate = f"{ratio(look) / ratio(flow):.2f}x"
        lines.append(f"{label:36}{cell(look, fmt):>14}{cell(flow, fmt):>14}{rate:>16}   {goal}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14",
                        help="redis://... (DB 14 is used) or amqp://... (a vhost is made)")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--targets", default="lookout,flower")
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
        for kind in [t.strip() for t in opts.targets.split(",") if t.strip()]:
            results[kind] = run_target(kind, opts.broker, opts, workdir)
    except KeyboardInterrupt:
        print("interrupted; children stopped")
        raise SystemExit(130)
    print()
    print(table(results, opts))
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
