"""The workflow page on real canvases: a chord (with a task Celery retries) inside a chain
that ends in a group, run by a real worker with a result backend (chords need one).

What the events tell, as these tests see it (docs/api.md): a chain's next task names the
one before as parent; a group's members name whoever sent the group; a chord's callback
names the header task that finished last; a top-level group or chord (sent from a
client) shares no root at all: each member is a root of its own.
"""
from __future__ import annotations

import re
from typing import Any, Iterator, NamedTuple

import pytest
from celery import chain, chord, group

from helpers.support import start_worker
from helpers.workers import RunningWorker, task_client, unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Canvas(NamedTuple):
    worker: RunningWorker
    client: Any  # a Celery app with the same result backend as the worker

    def sig(self, name: str, *args: Any, **kwargs: Any):
        return self.client.signature(name, args=args, kwargs=kwargs, queue=self.worker.queue)

    def fixed(self, name: str, *args: Any, **kwargs: Any):
        """Ignores the result of the task before it (a chain passes it on)."""
        return self.client.signature(name, args=args, kwargs=kwargs, queue=self.worker.queue,
                                     immutable=True)


@pytest.fixture(scope="module")
def canvas(lookout, redis_broker, tmp_path_factory) -> Iterator[Canvas]:
    """A second worker watched by the module's Lookout, this one with a result backend
    (the broker's Redis database), and a client app with the same backend."""
    hostname, queue = f"{unique('lookout-chord')}@test", unique("lookout-chord-q")
    process = start_worker(tmp_path_factory.mktemp("chord-worker"), redis_broker, hostname,
                           queues=queue, env={"LOOKOUT_TEST_BACKEND": redis_broker})
    try:
        with task_client(redis_broker) as client:
            client.conf.update(result_backend=redis_broker)
            try:
                yield Canvas(RunningWorker(redis_broker, hostname, queue, process), client)
            finally:
                # Each sent task's result was subscribed to (Redis pubsub): close that
                # connection, and leave results collected later nothing to unsubscribe.
                consumer = client.backend.result_consumer
                consumer.subscribed_to.clear()
                consumer.stop()
                client.backend.client.connection_pool.disconnect()
    finally:
        process.stop()


def shot(page, path) -> None:
    """Screenshot bytes written here (Playwright's own writer leaks a thread)."""
    path.write_bytes(page.screenshot(full_page=True))


def nodes(tree: dict) -> dict[str, tuple[dict, str | None]]:
    """uuid -> (node, uuid of the node holding it)."""
    out, stack = {}, [(tree, None)]
    while stack:
        node, holder = stack.pop()
        out[node["uuid"]] = (node, holder)
        stack.extend((child, node["uuid"]) for child in node["children"] + node["retries"])
    return out


def test_workflow_tree_of_a_real_chord(page, lookout, canvas, artifacts_dir):
    from playwright.sync_api import expect

    root_id = unique("wf-root")
    flow = chain(
        canvas.sig("sample.add", 1, 1).set(task_id=root_id),
        chord([canvas.sig("sample.add", 2), canvas.sig("sample.add", 3),
               canvas.fixed("sample.retry", countdown=0.1)], canvas.sig("sample.echo")),
        group(canvas.sig("sample.echo", "a"), canvas.sig("sample.echo", "b")),
    ).apply_async()
    for result in flow.results:  # the group's two members: the last to run
        lookout.wait_state(result.id, "SUCCESS", timeout=60)

    body = lookout.api(f"/api/v1/workflows/{root_id}")
    found = nodes(body["tree"])
    assert body["total"] == 7 and not body["truncated"] and len(found) == 7
    assert body["states"] == {"SUCCESS": 7}
    headers = body["tree"]["children"]
    assert sorted(h["name"] for h in headers) == ["sample.add", "sample.add", "sample.retry"]
    retried = next(h for h in headers if h["name"] == "sample.retry")
    assert retried["retry_count"] == 2 and retried["retries"] == []  # the same task, again
    (callback,) = [n for n, _ in found.values() if n["name"] == "sample.echo" and n["children"]]
    # The chord's callback hangs under the header task that finished last.
    assert found[callback["uuid"]][1] in {h["uuid"] for h in headers}
    members = [c["uuid"] for c in callback["children"]]
    assert sorted(members) == sorted(r.id for r in flow.results)
    assert not any(n["orphan"] for n, _ in found.values())

    page.goto(f"/workflows/{root_id}")
    tree = page.locator("#workflow")
    expect(tree).to_have_attribute("data-refreshing", "false")  # all finished: no more polls
    expect(page.locator("#workflow-total")).to_have_text("7")
    expect(page.locator('#workflow-states li[data-state="SUCCESS"] [data-testid="count"]')
           ).to_have_text("7")

    def li(uuid: str) -> str:
        return f'li[data-uuid="{uuid}"]'
    root_li = page.locator(f"#workflow-tree > ul > {li(root_id)}")
    expect(root_li).to_have_attribute("data-state", "SUCCESS")
    for header in headers:
        expect(root_li.locator(f"> ul > {li(header['uuid'])}")).to_have_attribute(
            "data-state", "SUCCESS")
    holder = found[callback["uuid"]][1]
    callback_li = root_li.locator(f"> ul > {li(holder)} > ul > {li(callback['uuid'])}")
    for member in members:
        expect(callback_li.locator(f"> ul > {li(member)}")).to_have_attribute("data-state",
                                                                              "SUCCESS")
    retried_li = root_li.locator(f"> ul > {li(retried['uuid'])}")
    expect(retried_li.locator("> .workflow-line")).to_contain_text("retried by Celery 2×")
    expect(page.locator('[data-testid="workflow-node"]')).to_have_count(7)
    link = root_li.locator('> .workflow-line [data-testid="workflow-task"]')
    assert link.get_attribute("href") == f"/tasks/{root_id}"
    shot(page, artifacts_dir / "workflow.png")
    page.watch.assert_clean()

    # The task page of any member leads to the whole workflow.
    page.goto(f"/tasks/{members[0]}")
    page.locator('[data-testid="workflow-link"]').click()
    expect(page).to_have_url(re.compile(rf"/workflows/{root_id}$"))
    expect(page.locator('[data-testid="workflow-node"]')).to_have_count(7)
    page.watch.assert_clean()


def test_a_top_level_chord_shares_no_root(lookout, canvas):
    """Sent from a client, a chord's header tasks are each a root of their own: the
    callback joins the workflow of the header task that finished last."""
    header_ids = [unique("hdr") for _ in range(3)]
    callback = chord([canvas.sig("sample.add", i, i).set(task_id=task_id)
                      for i, task_id in enumerate(header_ids)],
                     canvas.sig("sample.echo")).apply_async()
    row = lookout.wait_state(callback.id, "SUCCESS", timeout=60)
    for task_id in header_ids:
        header = lookout.wait_state(task_id, "SUCCESS")
        assert header["root_id"] == task_id and header["parent_id"] is None
    assert row["parent_id"] in header_ids and row["root_id"] == row["parent_id"]
    body = lookout.api(f"/api/v1/workflows/{row['parent_id']}")
    assert [c["uuid"] for c in body["tree"]["children"]] == [callback.id]
    assert body["total"] == 2


def test_the_page_follows_a_running_workflow_until_it_finishes(page, lookout, canvas):
    from playwright.sync_api import expect

    root_id = unique("wf-slow")
    chain(canvas.sig("sample.sleep", 2.0).set(task_id=root_id),
          canvas.sig("sample.echo")).apply_async()
    page.goto(f"/workflows/{root_id}")
    tree = page.locator("#workflow")
    # Unknown at first (404: its events are on their way), then running: polled either way.
    expect(tree).to_have_attribute("data-refreshing", "true")
    expect(page.locator(f'li[data-uuid="{root_id}"]')).to_have_attribute(
        "data-state", re.compile("^(PENDING|RECEIVED|STARTED)$"))
    expect(tree).to_have_attribute("data-refreshing", "false", timeout=30_000)
    expect(page.locator('#workflow-states li[data-state="SUCCESS"] [data-testid="count"]')
           ).to_have_text("2")
    expect(page.locator(f'li[data-uuid="{root_id}"] > ul > li[data-state="SUCCESS"]')
           ).to_have_count(1)
    page.watch.assert_clean()


def test_a_retry_sent_from_lookout_shows_as_a_retry_not_a_child(page, lookout, canvas,
                                                               artifacts_dir):
    from playwright.sync_api import expect

    root_id = unique("wf-fail")
    flow = chain(canvas.sig("sample.add", 1, 1).set(task_id=root_id),
                 group(canvas.sig("sample.add", 2), canvas.fixed("sample.fail", "<b>no</b>")))
    added, failed = [result.id for result in flow.apply_async().results]
    lookout.wait_state(added, "SUCCESS")
    lookout.wait_state(failed, "FAILURE")
    page.goto(f"/tasks/{failed}")
    page.click("#retry-button")
    page.click("#confirm-ok")
    link = page.locator('#retry-form [data-testid="new-task-link"]')
    expect(link).to_be_visible()
    new_id = link.inner_text().strip()
    lookout.wait_state(new_id, "FAILURE")

    page.goto(f"/workflows/{root_id}")
    expect(page.locator("#workflow")).to_have_attribute("data-refreshing", "false")
    failed_li = page.locator(f'li[data-uuid="{root_id}"] > ul > li[data-uuid="{failed}"]')
    retry_li = failed_li.locator(f'> ul.workflow-retries > li[data-uuid="{new_id}"]')
    expect(retry_li).to_have_attribute("data-state", "FAILURE")
    expect(retry_li).to_contain_text("retried by Lookout as")
    expect(page.locator('#workflow-states li[data-state="FAILURE"] [data-testid="count"]')
           ).to_have_text("2")
    expect(page.locator("#workflow-total")).to_have_text("4")
    shot(page, artifacts_dir / "workflow-retry.png")
    page.watch.assert_clean()
