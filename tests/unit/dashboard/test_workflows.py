"""GET /api/v1/workflows/<root_id> and the /workflows/<root_id> page, on SQLite and
PostgreSQL. The task shapes are the ones real Celery events give (docs/api.md): a chain's
next task names the one before as parent, a group's members the group's caller, a chord's
callback the header task that finished last; a top-level task that Celery retried names
itself as parent; a retry sent by Lookout is a root of its own, linked in task_links."""
from __future__ import annotations

import pytest

from helpers.factories import T0, add_task, add_tasks
from lookout.core.store.models import TaskLink
from lookout.dashboard.history.workflow import WORKFLOW_DEPTH


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url)


def link(engine, new: str, original: str, by: str = "ada") -> None:
    with engine.begin() as conn:
        conn.execute(TaskLink.__table__.insert(), [{"task_uuid": new, "retry_of": original,
                                                    "created_by": by, "created_at": T0}])


def shape(node) -> dict:
    """{uuid: (children uuids, retries uuids)} for every node of a tree."""
    out, stack = {}, [node]
    while stack:
        current = stack.pop()
        out[current["uuid"]] = ([c["uuid"] for c in current["children"]],
                                [r["uuid"] for r in current["retries"]])
        stack.extend(current["children"] + current["retries"])
    return out


def get(client, root_id: str, **params):
    response = client.get(f"/api/v1/workflows/{root_id}", query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def chord_in_chain(engine):
    """chain(add, chord([add, add, retry], echo), echo) as a worker reports it, and a
    Lookout retry (with a child) of a failed header task, retried again (not run yet)."""
    t = iter(range(100))
    def task(uuid, **fields):
        return add_task(engine, uuid=uuid, root_id="root", timestamp=T0 + next(t), **fields)
    task("root", name="sample.add", parent_id=None)
    task("h1", name="sample.add", parent_id="root", worker="w1", runtime=0.25)
    task("h2", name="sample.add", parent_id="root", state="FAILURE")
    task("h3", name="sample.retry", parent_id="root", retries=2)
    task("body", name="sample.echo", parent_id="h3")
    task("after", name="sample.echo", parent_id="body", state="STARTED")
    # Lookout's retry of h2: its own root; it sent a child; it was retried again.
    add_task(engine, uuid="h2-again", root_id="h2-again", parent_id=None, state="FAILURE",
             timestamp=T0 + 50)
    add_task(engine, uuid="h2-again-child", root_id="h2-again", parent_id="h2-again",
             timestamp=T0 + 51)
    link(engine, "h2-again", "h2")
    link(engine, "h2-third", "h2-again")
    # Someone else's workflow, never mixed in.
    add_task(engine, uuid="other", root_id="other-root", parent_id="root")


def test_chord_in_a_chain_with_retries_is_one_tree(client, chord_in_chain):
    body = get(client, "root")
    assert body["root_id"] == "root" and body["belongs_to"] is None
    assert body["total"] == 8 and body["truncated"] is False
    assert [t["uuid"] for t in body["tasks"]] == ["root", "h1", "h2", "h3", "body", "after",
                                                  "h2-again", "h2-again-child"]
    assert shape(body["tree"]) == {
        "root": (["h1", "h2", "h3"], []),
        "h1": ([], []),
        "h2": ([], ["h2-again"]),  # a retry, not a child
        "h2-again": (["h2-again-child"], ["h2-third"]),
        "h2-again-child": ([], []),
        "h2-third": ([], []),
        "h3": (["body"], []),
        "body": (["after"], []),
        "after": ([], []),
    }
    assert body["states"] == {"SUCCESS": 5, "FAILURE": 2, "STARTED": 1, "PENDING": 1}
    h1 = body["tree"]["children"][0]
    assert {k: h1[k] for k in ("name", "state", "worker", "runtime", "orphan", "seen")} == {
        "name": "sample.add", "state": "SUCCESS", "worker": "w1", "runtime": 0.25,
        "orphan": False, "seen": True}
    assert body["tree"]["children"][2]["retry_count"] == 2
    third = body["tree"]["children"][1]["retries"][0]["retries"][0]
    assert third["seen"] is False and third["state"] == "PENDING" and third["name"] is None
    assert set(body["tasks"][0]) >= {"uuid", "state", "args", "truncated", "lost"}


def test_a_retry_seen_as_a_workflow_of_its_own(client, chord_in_chain):
    assert shape(get(client, "h2-again")["tree"]) == {
        "h2-again": (["h2-again-child"], ["h2-third"]), "h2-again-child": ([], []),
        "h2-third": ([], [])}


def test_a_member_points_to_its_workflow(client, chord_in_chain):
    body = get(client, "body")
    assert body["belongs_to"] == "root" and shape(body["tree"]) == {"body": ([], [])}


def test_a_top_level_task_celery_retried_names_itself_as_parent(client, engine):
    add_task(engine, uuid="solo", root_id="solo", parent_id="solo", retries=2)
    add_task(engine, uuid="next", root_id="solo", parent_id="solo")
    body = get(client, "solo")
    assert shape(body["tree"]) == {"solo": (["next"], []), "next": ([], [])}
    assert body["tree"]["orphan"] is False and body["tree"]["children"][0]["orphan"] is False


def test_unknown_parents_and_loops_hang_under_the_root(client, engine):
    add_task(engine, uuid="r", root_id="r")
    add_task(engine, uuid="lost-parent", root_id="r", parent_id="never-seen")
    add_task(engine, uuid="no-parent", root_id="r", parent_id=None)
    add_task(engine, uuid="self", root_id="r", parent_id="self")
    add_task(engine, uuid="loop-a", root_id="r", parent_id="loop-b")
    add_task(engine, uuid="loop-b", root_id="r", parent_id="loop-a")
    tree = get(client, "r")["tree"]
    assert sorted(c["uuid"] for c in tree["children"]) == [
        "loop-a", "lost-parent", "no-parent", "self"]
    assert all(c["orphan"] for c in tree["children"])
    assert len(shape(tree)) == 6  # loop-b still shown, under loop-a


def test_the_root_may_be_unseen(client, engine):
    add_task(engine, uuid="a", root_id="ghost", parent_id="ghost")
    add_task(engine, uuid="b", root_id="ghost", parent_id="a")
    body = get(client, "ghost")
    assert body["tree"]["seen"] is False and body["tree"]["state"] is None
    assert shape(body["tree"]) == {"ghost": (["a"], []), "a": (["b"], []), "b": ([], [])}
    assert body["total"] == 2 and body["states"] == {"SUCCESS": 2}


def test_limit_keeps_the_oldest_and_says_truncated(client, engine):
    add_tasks(engine, 5, root_id="big", parent_id="big")
    add_task(engine, uuid="big", root_id="big", timestamp=T0 - 1)
    body = get(client, "big", limit="3")
    assert body["total"] == 6 and body["truncated"] is True and len(body["tasks"]) == 3
    assert body["tasks"][0]["uuid"] == "big" and len(body["tree"]["children"]) == 2


def test_a_long_chain_nests_to_a_bounded_depth(client, engine):
    add_task(engine, uuid="c0", root_id="c0", timestamp=T0)
    for i in range(1, 150):
        add_task(engine, uuid=f"c{i}", root_id="c0", parent_id=f"c{i - 1}", timestamp=T0 + i)
    body = get(client, "c0")
    node, depth = body["tree"], 1
    while node["children"]:
        node, depth = node["children"][0], depth + 1
    assert depth == WORKFLOW_DEPTH and node["uuid"] == f"c{WORKFLOW_DEPTH - 1}"
    assert node["deeper"] == 150 - WORKFLOW_DEPTH and body["total"] == 150


@pytest.mark.parametrize("url, status, parameter", [
    ("/api/v1/workflows/nope", 404, None),
    ("/api/v1/workflows/r?limit=0", 400, "limit"),
    ("/api/v1/workflows/r?limit=2001", 400, "limit"),
    ("/api/v1/workflows/r?limit=x", 400, "limit"),
    ("/api/v1/workflows/r?depth=3", 400, "depth"),
    ("/api/v1/workflows/" + "x" * 256, 400, "root_id"),
])
def test_bad_and_unknown_ids_are_json_errors(client, engine, url, status, parameter):
    add_task(engine, uuid="r", root_id="r")
    response = client.get(url)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["status"] == status and error.get("parameter") == parameter


def test_the_page_carries_the_id_as_text(client):
    response = client.get('/workflows/"><b>x')
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-root-id="&#34;&gt;&lt;b&gt;x"' in page and "<b>x" not in page
    assert "js/workflow.js" in page and "<script>" not in page
