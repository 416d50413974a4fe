"""Time typical /api/v1/tasks queries over a store of 1,000,000 tasks, SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.query                 # both backends, 1M rows
    .venv/bin/python -m benchmarks.query --rows 200000 --backend sqlite --refill

The store is filled once with executemany (PostgreSQL: COPY) and reused on later runs when
it already holds the requested number of rows. Each query runs through Flask's test client,
so parsing, SQL, serialisation and the total count are all measured; totals are timed both
uncached ("cold": every request counts) and with the adaptive total cache the app uses
("cached": the first request of each query counts, later ones within its TTL do not).
Other processes on the machine inflate p95 easily: `min` shows what a quiet machine gets.
Each row's p95 is printed beside the 50 ms target of issue 11 ("ok" or "MISS").
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid as uuidlib
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import text

from lookout.collectors.planner_statistics import PlannerStatistics
from lookout.core.config import Settings
from lookout.core.store import db as store_db
from lookout.core.store.models import Task
from lookout.dashboard.history.query import encode_cursor, parse_sort

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/lookout_bench"
SQLITE_URL = "sqlite:////tmp/lookout-bench.db"
START = 1_760_000_000.0
SPAN = 7 * 86400.0  # a week of history
NAMES = [f"proj.tasks.job_{i:02d}" for i in range(50)]
WORKERS = [f"celery@worker{i:02d}" for i in range(20)]
QUEUES = ["celery", "default", "high", "low", "reports"]
STATES = ["SUCCESS"] * 80 + ["FAILURE"] * 6 + ["RETRY"] * 3 + ["STARTED"] * 4 + \
    ["RECEIVED"] * 4 + ["PENDING"] * 1 + ["REVOKED"] * 1 + ["REJECTED"] * 1
COLUMNS = [c.name for c in Task.__table__.c]
TARGET_MS = 50.0  # p95 of every list query, cold or cached (issue 11)


def make_row(i: int, rows: int, rnd: random.Random) -> dict:
    ts = START + SPAN * i / rows + rnd.random() * 0.01
    state = rnd.choice(STATES)
    started = ts + rnd.random() * 0.2 if state not in ("PENDING", "RECEIVED", "REVOKED",
                                                       "REJECTED") else None
    # As the collector stores them: a failure's runtime is from started to failed.
    runtime = rnd.lognormvariate(-1, 1.2) if state in ("SUCCESS", "FAILURE") else None
    return {
        "uuid": str(uuidlib.UUID(int=rnd.getrandbits(128), version=4)),
        "name": rnd.choice(NAMES), "state": state, "state_ts": ts + 1,
        "worker": rnd.choice(WORKERS), "queue": rnd.choice(QUEUES), "exchange": None,
        "routing_key": None, "args": f"({i}, {rnd.randint(0, 10**6)})" if i % 10 else
        f"('/data/report-{rnd.randint(0, 99_999)}.csv',)",  # a file name in 10% of them
        "kwargs": "{'user': 'u%d'}" % rnd.randint(0, 5000),
        "result": repr(rnd.randint(0, 10**6)) if state == "SUCCESS" else None,
        "exception": "ValueError('bad input %d')" % i if state in ("FAILURE", "RETRY") else None,
        "traceback": "Traceback (most recent call last):\n ..." if state == "FAILURE" else None,
        "retries": 1 if state == "RETRY" else 0, "eta": None, "expires": None,
        "root_id": None, "parent_id": None, "timestamp": ts, "sent_at": None,
        "received_at": ts, "started_at": started,
        "succeeded_at": started + runtime if state == "SUCCESS" else None,
        "failed_at": started + runtime if state == "FAILURE" else None,
        "retried_at": ts + 1 if state == "RETRY" else None,
        "revoked_at": ts + 1 if state == "REVOKED" else None, "expired": None,
        "rejected_at": ts + 1 if state == "REJECTED" else None,
        "runtime": runtime, "queue_wait": (started - ts) if started else None,
        "updated_at": ts + 1,
    }


def fill(url: str, rows: int, refill: bool) -> None:
    engine = store_db.make_engine(url)
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM tasks")).scalar_one()
    if have == rows and not refill:
        print(f"  reusing {have} rows")
        statistics_as_the_collector_takes_them(engine)
        engine.dispose()
        return
    rnd = random.Random(42)
    began = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(Task.__table__.delete())
    chunk = 50_000
    for offset in range(0, rows, chunk):
        batch = [make_row(i, rows, rnd) for i in range(offset, min(rows, offset + chunk))]
        if engine.dialect.name == "postgresql":
            raw = engine.raw_connection()
            try:
                with raw.cursor() as cur, cur.copy(
                        f"COPY tasks ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row([row[c] for c in COLUMNS])
                raw.commit()
            finally:
                raw.close()
        else:
            with engine.begin() as conn:
                conn.execute(Task.__table__.insert(), batch)
    if engine.dialect.name == "postgresql":  # as autovacuum would have, in time
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE tasks"))
    statistics_as_the_collector_takes_them(engine)
    print(f"  filled {rows} rows in {time.perf_counter() - began:.1f}s")
    engine.dispose()


def statistics_as_the_collector_takes_them(engine) -> None:
    """SQLite plans by its statistics: the store gets those the collector would take
    (`ANALYZE tasks`, collectors/planner_statistics.py), not a whole-database ANALYZE as
    this script once ran (a Lookout store then had none at all: see benchmarks/README.md)."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS sqlite_stat1"))
            conn.execute(text("DROP TABLE IF EXISTS sqlite_stat4"))
        PlannerStatistics(engine, check_every=0.0).refresh_if_due()


def prepare(url: str) -> None:
    if url.startswith("postgresql"):
        from sqlalchemy import create_engine

        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname='lookout_bench'"
                                       )).scalar()
            if not exists:
                conn.execute(text('CREATE DATABASE "lookout_bench"'))
        admin.dispose()
    store_db.upgrade(url)


def queries() -> dict[str, list[str]]:
    """Several variants of each query shape, so no single lucky plan or row decides."""
    rnd = random.Random(7)
    hour = 3600.0

    def window() -> tuple[float, float]:
        start = START + rnd.random() * (SPAN - 6 * hour)
        return start, start + 6 * hour

    deep = []
    for _ in range(3):  # cursors deep into the default sort and a state filter
        for base in ("/api/v1/tasks?limit=50", "/api/v1/tasks?state=SUCCESS&limit=50"):
            ts = START + SPAN * rnd.uniform(0.05, 0.15)  # old rows: far from page 1
            # A cursor carries its query's parameters (query.py): the sorted pairs.
            params = tuple(sorted(parse_qsl(urlsplit(base).query)))
            cursor = encode_cursor(parse_sort("-timestamp"), ts, "f" * 36, params)
            deep.append(f"{base}&cursor={cursor}")
    return {
        "default (newest first)": ["/api/v1/tasks", "/api/v1/tasks?limit=100"],
        "state filter": [f"/api/v1/tasks?state={s}" for s in
                         ("FAILURE", "SUCCESS", "RETRY", "STARTED", "REVOKED")],
        "two states": ["/api/v1/tasks?state=FAILURE&state=RETRY"],
        "name": [f"/api/v1/tasks?name={rnd.choice(NAMES)}" for _ in range(5)],
        "name + after/before (6h)": [
            "/api/v1/tasks?name={}&after={}&before={}".format(rnd.choice(NAMES), *window())
            for _ in range(5)],
        "name + received range (6h)": [
            "/api/v1/tasks?name={}&received_after={}&received_before={}".format(
                rnd.choice(NAMES), *window()) for _ in range(5)],
        "received range alone (6h)": [
            "/api/v1/tasks?received_after={}&received_before={}".format(*window())
            for _ in range(5)],
        "worker + state": [f"/api/v1/tasks?worker={rnd.choice(WORKERS)}&state=FAILURE"
                           for _ in range(5)],
        "deep pagination (cursor)": deep,
        "sort -runtime": ["/api/v1/tasks?sort=-runtime", "/api/v1/tasks?sort=runtime"],
        "state + sort -runtime": ["/api/v1/tasks?state=SUCCESS&sort=-runtime",
                                  "/api/v1/tasks?state=FAILURE&sort=-runtime"],
        # Rare: 1 to ~230 matches; common: in 2%, 9% and all of the rows.
        "q= rare (whole table)": ["/api/v1/tasks?q=bad%20input%2012345",
                                  "/api/v1/tasks?q=u4321", "/api/v1/tasks?q=report-42.csv",
                                  "/api/v1/tasks?q=%27u123%27",
                                  "/api/v1/tasks?q=ValueError(%27bad%20input%20777"],
        "q= common (whole table)": ["/api/v1/tasks?q=ValueError", "/api/v1/tasks?q=u43",
                                    "/api/v1/tasks?q=%27user%27"],
        "q= + state": ["/api/v1/tasks?q=u4321&state=SUCCESS",
                       "/api/v1/tasks?q=bad%20input&state=FAILURE"],
        "q= + name": [f"/api/v1/tasks?q=u43&name={rnd.choice(NAMES)}" for _ in range(3)],
        "q= rare, sort -runtime": ["/api/v1/tasks?q=u4321&sort=-runtime"],
        "name= prefix / substring *": ["/api/v1/tasks?name=proj.tasks.job_1*",
                                       "/api/v1/tasks?name=*job_4*",
                                       "/api/v1/tasks?name=*JOB_07"],
    }


def timed(client, url: str) -> tuple[float, dict]:
    began = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - began) * 1000
    assert response.status_code == 200, (url, response.status_code, response.get_data()[:300])
    return elapsed, response.get_json()


def run(url: str, rows: int, repeat: int) -> None:
    from lookout.dashboard import create_app

    app = create_app(Settings.load({}, database_url=url, auth=False))
    history = app.extensions["lookout.history"]
    client = app.test_client()
    print(f"  target: p95 <= {TARGET_MS:.0f} ms; totals as answered ('+': a lower bound)")
    for label, urls in queries().items():
        for mode, ttl in (("cold", 0.0), ("cached", None)):
            history.counts.ttl = ttl
            history.counts.clear()
            samples = []
            totals = set()
            for _ in range(repeat):
                for u in urls:
                    elapsed, body = timed(client, u)
                    samples.append(elapsed)
                    totals.add(f"{body['total']}{'' if body.get('total_exact', True) else '+'}")
            samples.sort()
            p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
            verdict = "ok" if p95 <= TARGET_MS else "MISS"
            print(f"  {label:<30} {mode:<6}  min {samples[0]:7.1f}  p50 "
                  f"{statistics.median(samples):7.1f}  p95 {p95:7.1f} ms  {verdict:<4} "
                  f"(n={len(samples)}; totals {', '.join(sorted(totals))[:60]})")
    history.counts.ttl = None
    walk("/api/v1/tasks?state=FAILURE&limit=100", client)
    app.extensions["lookout.engine"].dispose()


def walk(url: str, client, pages: int = 20) -> None:
    """A client paging through one result: per-page latency with the total cache on."""
    samples, cursor = [], None
    for _ in range(pages):
        elapsed, body = timed(client, url + (f"&cursor={cursor}" if cursor else ""))
        samples.append(elapsed)
        cursor = body["next_cursor"]
        if not cursor:
            break
    samples.sort()
    print(f"  {'walk pages ' + url[14:]:<30} p50 {statistics.median(samples):7.1f} ms"
          f"  max {samples[-1]:7.1f} ms  (pages={len(samples)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--refill", action="store_true")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        url = SQLITE_URL if backend == "sqlite" else PG_URL
        print(f"{backend}: {url}")
        prepare(url)
        fill(url, args.rows, args.refill)
        run(url, args.rows, args.repeat)


if __name__ == "__main__":
    main()
