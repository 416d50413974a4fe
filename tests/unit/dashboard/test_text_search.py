"""q= through the text index (migration 0011), name patterns and bounded totals, on real
SQLite and PostgreSQL stores."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from helpers.event_factory import T0, task
from helpers.factories import add_task, add_tasks
from lookout.collectors.buffer import EventBuffer
from lookout.collectors.retention import Pruner
from lookout.collectors.stats import CollectorStats
from lookout.collectors.writer import HistoryWriter
from lookout.core.config import Settings
from lookout.dashboard.history import service

FIELDS = ("args", "kwargs", "result", "exception")


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url)


def found(client, query: str) -> set[str]:
    response = client.get(f"/api/v1/tasks?limit=1000&{query}")
    assert response.status_code == 200, response.get_json()
    return {item["uuid"] for item in response.get_json()["items"]}


def test_q_finds_a_substring_of_args_kwargs_result_or_exception(client, engine):
    rows = {
        "args": add_task(engine, args="('/data/report-42.csv', 7)"),
        "kwargs": add_task(engine, kwargs="{'user': 'Zoë', 'mode': \"fast\"}"),
        "result": add_task(engine, result="'NEAR(done) * 100% ok'"),
        "exception": add_task(engine, state="FAILURE",
                              exception="KeyError('missing_key')"),
        "traceback only": add_task(engine, traceback="Traceback: report-42.csv"),
    }
    uuid = {field: row["uuid"] for field, row in rows.items()}
    assert found(client, "q=report-42.csv") == {uuid["args"]}
    assert found(client, "q=PORT-4") == {uuid["args"]}  # case-insensitive, mid-word
    assert found(client, "q=%27mode%27: %22fast") == {uuid["kwargs"]}  # quotes are literal
    assert found(client, "q=near(done) *") == {uuid["result"]}  # FTS5 syntax is literal
    assert found(client, "q=100%25 ok") == {uuid["result"]}
    assert found(client, "q=keyerror(%27missing_") == {uuid["exception"]}
    assert found(client, "q=missing%25key") == set()  # % is no wildcard
    # Two characters: no trigram, so a scan, with the same meaning.
    assert found(client, "q=42") == {uuid["args"]}
    if engine.dialect.name == "sqlite":  # the answers above came through the index
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO tasks_fts(tasks_fts) VALUES ('delete-all')")
        assert found(client, "q=report-42") == set()
        assert found(client, "q=42") == {uuid["args"]}


def settings(**changes) -> Settings:
    return Settings(batch_size=500, retention=7 * 86400.0, max_tasks=0,
                    rollup_retention=0).replace(**changes)


def assert_index_in_step(engine, client, terms):
    """Whatever the rows hold is found, nothing else: and on SQLite the FTS5 table holds
    exactly each field's current text (no entry left behind by an update or a delete)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT uuid, args, kwargs, result, exception FROM tasks"))
        stored = [row._mapping for row in rows]
        for term in terms:
            holding = {r["uuid"] for r in stored
                       if any(term.lower() in (r[f] or "").lower() for f in FIELDS)}
            assert found(client, f"q={term}") == holding, term
            if conn.dialect.name != "sqlite":
                continue
            indexed = conn.execute(text("SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH "
                                        ":m ORDER BY rowid"), {"m": f'"{term}"'}).scalars()
            expected = conn.execute(text(" UNION ".join(
                f"SELECT rowid * 4 + {i} FROM tasks WHERE {f} LIKE :p" for i, f in
                enumerate(FIELDS)) + " ORDER BY 1"), {"p": f"%{term}%"}).scalars()
            assert list(indexed) == list(expected), term


def test_the_index_follows_the_writers_updates_and_retention(app, client, engine):
    """Each batch of the writer, then retention: a task that fails later gets its
    exception found; texts that change (task-received's args over task-sent's, a failure's
    exception over a retry's) are found by their new value only; a pruned task is gone."""
    writer = HistoryWriter(engine, EventBuffer(), settings(), CollectorStats())
    now = T0 + 30 * 86400.0

    def write(*events):
        writer.write_batch([e._replace(local_received=e.timestamp) for e in events])

    old, failing, retried = "t-old", "t-failing", "t-retried"
    job = dict(name="proj.job", kwargs="{}", retries=0)
    terms = ("alpha", "omega", "boom", "try again", "gave up", "sent")
    write(task("task-sent", old, T0, args="('alpha-sent',)", **job),
          task("task-received", failing, now, args="('alpha-fail',)", **job),
          task("task-received", retried, now, args="('alpha-retry',)", **job))
    assert_index_in_step(engine, client, terms)
    write(task("task-received", old, T0 + 1, args="('alpha-old',)", **job),
          task("task-succeeded", old, T0 + 2, result="'omega-old'", runtime=1.0),
          task("task-failed", failing, now + 1, exception="RuntimeError('Boom-1')"),
          task("task-retried", retried, now + 1, exception="RuntimeError('try again')"))
    assert found(client, "q=boom-1") == {failing}
    assert found(client, "q=alpha-sent") == set()
    assert_index_in_step(engine, client, terms)
    write(task("task-failed", retried, now + 3, exception="RuntimeError('gave up')"))
    assert found(client, "q=try again") == set()
    assert_index_in_step(engine, client, terms)

    while Pruner(engine, settings()).prune_step(now + 10):
        pass
    assert found(client, "") == {failing, retried}
    assert_index_in_step(engine, client, terms)


def test_totals_are_exact_up_to_the_limit_then_a_lower_bound(client, engine, monkeypatch):
    monkeypatch.setattr(service, "COUNT_LIMIT", 5)
    add_tasks(engine, 5, state="FAILURE", exception="ValueError('x-ray')")
    add_tasks(engine, 7, start=T0 + 100, kwargs="{'user': 'x-ray'}")
    add_task(engine, args="('x-ray-1',)", timestamp=T0 + 200)
    for query, total, exact in [("state=FAILURE", 5, True), ("", 5, False),
                                ("q=x-ray", 5, False), ("q=x-ray-1", 1, True),
                                ("name=proj.tasks.add&state=SUCCESS", 5, False)]:
        body = client.get(f"/api/v1/tasks?limit=3&{query}").get_json()
        assert (body["total"], body["total_exact"]) == (total, exact), query
    # More matches than the limit: SQLite's search walks instead of fetching candidates,
    # and pages still visit every match once, in order.
    seen, cursor = [], None
    for _ in range(10):
        body = client.get("/api/v1/tasks?limit=5&q=X-RAY" + (f"&cursor={cursor}" if cursor
                                                             else "")).get_json()
        seen += [item["timestamp"] for item in body["items"]]
        if not (cursor := body["next_cursor"]):
            break
    assert len(seen) == len(set(seen)) == 13 and seen == sorted(seen, reverse=True)


@pytest.mark.parametrize("set_max", [100, 10], ids=["hits-as-a-set", "too-many-for-a-set"])
def test_a_common_q_with_another_filter_answers_the_same_through_the_set_of_hits(
        client, engine, monkeypatch, set_max):
    """Between COUNT_LIMIT and FTS_SET_MAX index hits, SQLite filters by the set of hits
    while another index (here the name's) is walked: same answers as LIKE alone, pages
    and totals included."""
    monkeypatch.setattr(service, "COUNT_LIMIT", 5)
    monkeypatch.setattr(service, "FTS_SET_MAX", set_max)
    used = []
    members = service.fts_members
    monkeypatch.setattr(service, "fts_members", lambda q: used.append(q) or members(q))
    wanted = {add_task(engine, name="proj.report", args=f"('needle-{i}',)",
                       timestamp=T0 + i)["uuid"] for i in range(0, 40, 2)}
    add_tasks(engine, 20, start=T0 + 1, step=2, name="proj.other", args="('needle',)")
    add_tasks(engine, 10, start=T0 + 100, name="proj.report", args="('hay',)")
    seen, cursor = [], None
    for _ in range(10):
        body = client.get("/api/v1/tasks?limit=6&q=NEEDLE&name=proj.report" +
                          (f"&cursor={cursor}" if cursor else "")).get_json()
        assert (body["total"], body["total_exact"]) == (5, False)  # COUNT_LIMIT, "5+"
        seen += [item["uuid"] for item in body["items"]]
        if not (cursor := body["next_cursor"]):
            break
    assert len(seen) == len(set(seen)) and set(seen) == wanted
    assert bool(used) == (engine.dialect.name == "sqlite" and set_max == 100)


def test_name_patterns_match_prefix_substring_and_suffix(client, engine):
    names = ["proj.reports.daily", "proj.reports.weekly", "proj.mail.send", "other.Report_x",
             "other.reportsx"]
    uuid = {name: add_task(engine, name=name)["uuid"] for name in names}
    add_task(engine, name=None)

    def named(*which):
        return {uuid[n] for n in which}

    assert found(client, "name=proj.reports.*") == named(names[0], names[1])
    assert found(client, "name=*REPORT*") == named(*names[:2], *names[3:])
    assert found(client, "name=*send") == named("proj.mail.send")
    assert found(client, "name=*report_x") == named("other.Report_x")  # _ is literal
    assert found(client, "name=proj.*.daily") == named("proj.reports.daily")
    assert found(client, "name=*") == named(*names)
    assert found(client, "name=proj.reports") == set()  # without *, exact as before
    assert found(client, "name=*reports*&sort=name&state=SUCCESS") == \
        named(names[0], names[1], names[4])
