"""GET /api/v1/tasks and /api/v1/tasks/<id> on real SQLite and PostgreSQL stores."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from helpers.factories import T0, add_event, add_task, add_tasks
from lookout.dashboard.history.query import encode_cursor, parse_sort


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url)


def uuids(response) -> set[str]:
    assert response.status_code == 200, response.get_json()
    return {item["uuid"] for item in response.get_json()["items"]}


@pytest.fixture
def mixed(engine):
    """Six tasks differing in every filterable attribute."""
    return {
        "a": add_task(engine, name="proj.add", state="SUCCESS", worker="w1", queue="q1",
                      timestamp=T0, received_at=T0, started_at=T0 + 1, runtime=0.5,
                      args="(1, 2)", root_id="root-1"),
        "b": add_task(engine, name="proj.add", state="FAILURE", worker="w2", queue="q1",
                      timestamp=T0 + 10, received_at=T0 + 10, started_at=T0 + 11,
                      exception="KeyError('Needle')", root_id="root-1", parent_id="x"),
        "c": add_task(engine, name="proj.mul", state="RETRY", worker="w1", queue="q2",
                      timestamp=T0 + 20, received_at=T0 + 20, started_at=T0 + 21,
                      kwargs="{'user': 'needle'}"),
        "d": add_task(engine, name="proj.mul", state="SUCCESS", worker="w2", queue="q2",
                      timestamp=T0 + 30, received_at=T0 + 30, started_at=T0 + 31,
                      runtime=5.0, result="'NEEDLE found'"),
        "e": add_task(engine, name="proj.div", state="PENDING", worker=None, queue="q1",
                      timestamp=T0 + 40, received_at=None, started_at=None),
        "f": add_task(engine, name="proj.div", state="STARTED", worker="w1", queue="q3",
                      timestamp=T0 + 50, received_at=T0 + 50, started_at=T0 + 51,
                      args="100% sure_thing"),
    }


@pytest.mark.parametrize("query, expected", [
    ("", "abcdef"),
    ("state=SUCCESS", "ad"),
    ("state=failure", "b"),
    ("state=SUCCESS&state=RETRY", "acd"),
    ("state=success,retry&state=RETRY", "acd"),
    ("name=proj.mul", "cd"),
    ("worker=w1", "acf"),
    ("queue=q1", "abe"),
    ("root_id=root-1", "ab"),
    ("parent_id=x", "b"),
    ("q=needle", "bcd"),
    ("q=100%25", "f"),
    ("q=e_t", "f"),
    ("q=1_0", ""),
    ("after={}&before={}".format(T0 + 20, T0 + 40), "cde"),
    ("name=proj.div&after={}".format(T0 + 45), "f"),
    ("received_after={}".format(T0 + 10), "bcdf"),
    ("received_before={}".format(T0 + 10), "ab"),
    ("started_after={}&started_before={}".format(T0 + 11, T0 + 31), "bcd"),
    ("runtime_min=1", "d"),
    ("runtime_max=1", "a"),
    ("name=proj.add&state=FAILURE", "b"),
    ("queue=q1&worker=w1&received_after={}".format(T0 - 1), "a"),
    ("q=NEEDLE&state=SUCCESS&name=proj.mul", "d"),
])
def test_filters_alone_and_combined(client, mixed, query, expected):
    response = client.get(f"/api/v1/tasks?{query}")
    assert uuids(response) == {mixed[k]["uuid"] for k in expected}
    assert response.get_json()["total"] == len(expected)


def test_iso_timestamps_mean_the_same_as_epoch_seconds(client, mixed):
    from datetime import datetime, timezone

    iso = datetime.fromtimestamp(T0 + 10, timezone.utc).isoformat().replace("+00:00", "Z")
    by_iso = uuids(client.get(f"/api/v1/tasks?received_after={iso}"))
    assert by_iso == uuids(client.get(f"/api/v1/tasks?received_after={T0 + 10}"))
    assert by_iso == {mixed[k]["uuid"] for k in "bcdf"}


def test_default_sort_is_newest_first_and_total_counts_beyond_the_page(client, engine):
    rows = add_tasks(engine, 30)
    body = client.get("/api/v1/tasks?limit=10").get_json()
    assert [i["uuid"] for i in body["items"]] == [r["uuid"] for r in reversed(rows)][:10]
    assert body["total"] == 30
    assert body["next_cursor"]
    assert "traceback" not in body["items"][0]


def test_list_items_cut_long_text_and_say_so(client, engine):
    add_task(engine, args="x" * 500, kwargs="{}", result="r" * 201)
    item = client.get("/api/v1/tasks").get_json()["items"][0]
    assert item["args"] == "x" * 200 and item["result"] == "r" * 200
    assert sorted(item["truncated"]) == ["args", "result"]


def _with_ties_and_nulls(engine) -> list[dict]:
    """40 tasks: repeated timestamps, names and runtimes, and NULLs in nullable columns."""
    with engine.begin() as conn:
        return [add_task(conn, timestamp=T0 + i // 3,
                         runtime=None if i % 4 == 0 else float(i % 5),
                         started_at=None if i % 3 == 0 else T0 + (i % 7),
                         received_at=T0 + i % 6,
                         worker=None if i % 5 == 0 else f"w{i % 3}",
                         name=None if i % 9 == 0 else f"job{i % 4}",
                         state=["SUCCESS", "FAILURE", "RETRY"][i % 3])
                for i in range(40)]


def walk_pages(client, url: str, expected_total: int) -> list[dict]:
    """Follow next_cursor to the end; every page must report the same total."""
    seen, cursor = [], None
    for _ in range(50):
        body = client.get(url + (f"&cursor={cursor}" if cursor else "")).get_json()
        assert body["total"] == expected_total
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return seen
    raise AssertionError("pagination does not end")


def assert_sorted(items: list[dict], sort: str) -> None:
    """Non-null values in order, NULLs after them whichever the direction."""
    values = [i[sort.lstrip("-")] for i in items]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=sort.startswith("-"))
    assert values == present + [None] * (len(values) - len(present))


SORTS = ["-timestamp", "timestamp", "runtime", "-runtime", "started_at", "-started_at",
         "received_at", "name", "-name", "state", "-state", "-worker"]


@pytest.mark.parametrize("sort", SORTS)
def test_pagination_visits_every_row_once_in_sort_order(client, engine, sort):
    rows = _with_ties_and_nulls(engine)
    seen = walk_pages(client, f"/api/v1/tasks?sort={sort}&limit=7", 40)
    assert len(seen) == 40 and {i["uuid"] for i in seen} == {r["uuid"] for r in rows}
    assert_sorted(seen, sort)


FILTERS = {
    "state=SUCCESS&state=RETRY": lambda r: r["state"] in ("SUCCESS", "RETRY"),
    # Served by the partial indexes of failed tasks (models.py), failures without a
    # runtime included.
    "state=FAILURE": lambda r: r["state"] == "FAILURE",
    "worker=w1&state=FAILURE": lambda r: r["state"] == "FAILURE" and r["worker"] == "w1",
    f"received_after={T0 + 1}&received_before={T0 + 4}": lambda r: T0 + 1 <= r["received_at"]
    <= T0 + 4,
}


@pytest.mark.parametrize("strategy", ["sort matches", "walk sort index"])
@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("sort", SORTS)
def test_filtered_pagination_is_exact_whichever_plan_is_chosen(app, client, engine, sort,
                                                               filters, strategy):
    """Filtered sorts either sort the matches or walk the sort index, depending on the
    total (see task_sql.plan); both must give the same pages."""
    app.extensions["lookout.history"].sort_matches_max = 10**6 if strategy == "sort matches" \
        else 0
    rows = _with_ties_and_nulls(engine)
    wanted = {r["uuid"] for r in rows if FILTERS[filters](r)}
    assert 4 < len(wanted) < 40
    seen = walk_pages(client, f"/api/v1/tasks?sort={sort}&limit=4&{filters}", len(wanted))
    assert [i["uuid"] for i in seen if i["uuid"] in wanted] == [i["uuid"] for i in seen]
    assert len(seen) == len(wanted) and {i["uuid"] for i in seen} == wanted
    assert_sorted(seen, sort)


@pytest.mark.parametrize("query, index, counted_by_it", [
    ("worker=w1&state=FAILURE", "ix_tasks_failed_worker_timestamp", True),
    # Counted on the (state, timestamp) index: up to 10,001 entries, from the index alone.
    ("state=FAILURE&sort=-runtime", "ix_tasks_failed_runtime", False),
    ("state=FAILURE&sort=runtime&limit=2", "ix_tasks_failed_runtime", False),
])
def test_failure_lists_read_the_failed_tasks_indexes_on_sqlite(make_app, sqlite_url, query,
                                                                index, counted_by_it):
    """The statements of these lists that look for tasks go through the partial index
    (SQLite keeps no statistics, so its plan follows from the statement alone): a
    statement reshaped so that the index no longer serves it fails here, not only in
    benchmarks/query.py at 1M tasks."""
    from sqlalchemy import event

    app = make_app(sqlite_url)
    engine = app.extensions["lookout.engine"]
    _with_ties_and_nulls(engine)
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "FROM tasks" in " ".join(statement.split()):
            statements.append((statement, parameters))
    event.listen(engine, "before_cursor_execute", record)
    response = app.test_client().get(f"/api/v1/tasks?{query}")
    event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200 and response.get_json()["items"]
    assert statements
    checked = 0
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters))
            if "count(*)" in statement and not counted_by_it:
                continue
            if "IS NULL" in statement:  # failures without a runtime: see failures_by_runtime
                assert "ix_tasks_runtime " not in plan + " ", (statement, plan)
                continue
            assert index in plan, (statement, plan)
            checked += 1
    assert checked >= 1 + counted_by_it


def test_pagination_with_a_filter_and_a_full_last_page(client, engine):
    add_tasks(engine, 20, state="FAILURE")
    add_tasks(engine, 5, state="SUCCESS")
    first = client.get("/api/v1/tasks?state=FAILURE&limit=10").get_json()
    second = client.get(f"/api/v1/tasks?state=FAILURE&limit=10&cursor={first['next_cursor']}"
                        ).get_json()
    assert len(second["items"]) == 10 and second["next_cursor"] is None
    assert not {i["uuid"] for i in first["items"]} & {i["uuid"] for i in second["items"]}
    assert first["total"] == second["total"] == 20


@pytest.mark.parametrize("query, parameter", [
    ("state=DONE", "state"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("limit=ten", "limit"),
    ("sort=color", "sort"),
    ("sort=traceback", "sort"),
    ("runtime_min=fast", "runtime_min"),
    ("runtime_max=nan", "runtime_max"),
    ("received_after=yesterday", "received_after"),
    ("before=soon", "before"),
    ("started_before=2026-13-45", "started_before"),
    ("cursor=not-a-cursor", "cursor"),
    ("cursor=e30", "cursor"),
    ("satte=SUCCESS", "satte"),
    ("name=" + "n" * 300, "name"),
    # One-value parameters given twice were read as the first (found by a new user).
    ("worker=a@x&worker=b@x", "worker"),
    ("name=proj.add&name=proj.mul", "name"),
    ("limit=1&limit=2", "limit"),
    ("state=SUCCESS&sort=name&sort=-name", "sort"),
])
def test_bad_parameters_are_400_naming_the_parameter(client, query, parameter):
    response = client.get(f"/api/v1/tasks?{query}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["parameter"] == parameter and error["status"] == 400
    assert parameter in error["message"]


def test_cursor_is_tied_to_its_sort(client, engine):
    add_tasks(engine, 5)
    cursor = client.get("/api/v1/tasks?limit=2&sort=runtime").get_json()["next_cursor"]
    response = client.get(f"/api/v1/tasks?limit=2&sort=-timestamp&cursor={cursor}")
    assert response.status_code == 400
    assert response.get_json()["error"]["parameter"] == "cursor"
    forged = encode_cursor(parse_sort("-timestamp"), "not a number", "u")
    assert client.get(f"/api/v1/tasks?cursor={forged}").status_code == 400


def test_a_cursor_alone_carries_its_filters_sort_and_limit(client, engine):
    """Page 2 of state=SUCCESS is still SUCCESS, with the same total and limit."""
    add_tasks(engine, 7, state="SUCCESS")
    add_tasks(engine, 5, start=T0 + 0.5, state="REVOKED")
    first = client.get("/api/v1/tasks?state=SUCCESS&limit=3&sort=timestamp").get_json()
    seen, cursor = [i["uuid"] for i in first["items"]], first["next_cursor"]
    while cursor:
        page = client.get(f"/api/v1/tasks?cursor={cursor}").get_json()
        assert page["total"] == 7 and len(page["items"]) <= 3
        assert {i["state"] for i in page["items"]} == {"SUCCESS"}
        seen += [i["uuid"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 7


def test_a_cursor_with_other_filters_is_a_400(client, engine):
    add_tasks(engine, 5, state="SUCCESS")
    cursor = client.get("/api/v1/tasks?state=SUCCESS&limit=2").get_json()["next_cursor"]
    same = client.get(f"/api/v1/tasks?limit=2&state=SUCCESS&cursor={cursor}")
    assert same.status_code == 200 and len(same.get_json()["items"]) == 2
    for other in ("state=REVOKED&limit=2", "state=SUCCESS&limit=3", "limit=2"):
        response = client.get(f"/api/v1/tasks?{other}&cursor={cursor}")
        assert response.status_code == 400, other
        assert response.get_json()["error"]["parameter"] == "cursor"


@pytest.mark.parametrize("query, parameter", [
    ("runtime_min=-1", "runtime_min"), ("runtime_max=1e300", "runtime_max"),
    ("after=-5", "after"), ("received_before=1e300", "received_before"),
    ("started_after=9999-12-31T00:00:00", "started_after"),
])
def test_negative_and_absurd_numbers_are_400(client, query, parameter):
    response = client.get(f"/api/v1/tasks?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["parameter"] == parameter


@pytest.mark.parametrize("query", [
    "name=x' OR '1'='1", "worker=w1\" OR 1=1 --", "q=%' OR 1=1 --",
    "queue='; DROP TABLE tasks; --", "root_id=1); DELETE FROM tasks; --",
])
def test_injection_strings_in_values_match_nothing_and_change_nothing(client, engine, query):
    add_tasks(engine, 3)
    response = client.get("/api/v1/tasks", query_string=dict([query.split("=", 1)]))
    assert response.status_code == 200
    assert response.get_json()["items"] == [] and response.get_json()["total"] == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tasks")).scalar() == 3


def test_injection_in_sort_is_refused_and_harmless(client, engine):
    add_tasks(engine, 3)
    response = client.get("/api/v1/tasks", query_string={"sort": "timestamp; DROP TABLE tasks"})
    assert response.status_code == 400 and response.get_json()["error"]["parameter"] == "sort"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tasks")).scalar() == 3


def test_task_detail_has_every_column_timeline_children_and_retries(client, engine):
    task = add_task(engine, state="SUCCESS", traceback=None, args="a" * 500, retries=1)
    add_event(engine, task["uuid"], "task-started", T0 + 2.0, hostname="w1")
    add_event(engine, task["uuid"], "task-received", T0 + 0.5, hostname="w1")
    add_event(engine, task["uuid"], "task-retried", T0 + 3.0, hostname="w1",
              exception="IOError('flaky')", traceback="Traceback ...")
    add_event(engine, task["uuid"], "task-succeeded", T0 + 7.5, hostname="w2", runtime=1.0)
    child = add_task(engine, parent_id=task["uuid"], root_id=task["uuid"])
    add_task(engine, parent_id="someone-else")

    body = client.get(f"/api/v1/tasks/{task['uuid']}").get_json()
    for column, value in task.items():
        assert body[column] == value, column  # full text, no truncation here
    timeline = body["timeline"]
    assert [e["type"] for e in timeline] == ["task-received", "task-started",
                                             "task-retried", "task-succeeded"]
    assert [e["gap"] for e in timeline] == [None, 1.5, 1.0, 4.5]
    assert timeline[3]["info"] == {"runtime": 1.0} and timeline[3]["hostname"] == "w2"
    assert [c["uuid"] for c in body["children"]] == [child["uuid"]]
    assert body["retry_history"] == [{"timestamp": T0 + 3.0, "hostname": "w1",
                                      "exception": "IOError('flaky')",
                                      "traceback": "Traceback ..."}]


def test_unknown_task_is_404_json(client):
    response = client.get("/api/v1/tasks/no-such-task")
    assert response.status_code == 404
    assert response.get_json()["error"]["status"] == 404


def test_totals_are_cached_per_filter_set_for_their_ttl(app, client, engine):
    history = app.extensions["lookout.history"]
    history.counts.ttl = 60.0
    add_tasks(engine, 3, state="FAILURE")
    assert client.get("/api/v1/tasks?state=FAILURE").get_json()["total"] == 3
    add_tasks(engine, 2, state="FAILURE")
    cached = client.get("/api/v1/tasks?state=FAILURE").get_json()
    assert cached["total"] == 3 and len(cached["items"]) == 5  # rows are live, total not
    assert client.get("/api/v1/tasks?state=failure&name=proj.tasks.add").get_json()["total"] == 5
    history.counts.ttl = 0.0
    history.counts.clear()
    assert client.get("/api/v1/tasks?state=FAILURE").get_json()["total"] == 5


@pytest.mark.parametrize("sort", ["-timestamp", "name", "-runtime"])
def test_text_search_pages_through_every_match_once(client, engine, sort):
    rows = add_tasks(engine, 9, kwargs="{'user': 'Alice'}", name="proj.a")
    add_tasks(engine, 4, kwargs="{'user': 'bob'}")
    seen = walk_pages(client, f"/api/v1/tasks?q=alice&limit=2&sort={sort}", 9)
    assert sorted(i["uuid"] for i in seen) == sorted(r["uuid"] for r in rows)
    assert_sorted(seen, sort)
    empty = client.get("/api/v1/tasks?q=carol").get_json()
    assert empty == {"items": [], "total": 0, "total_exact": True, "next_cursor": None}
