"""Workflows: every task of one root (chain, group, chord, nested canvases) as a tree.

Members are the root and every task whose root_id is it, linked by parent_id, plus the
retries Lookout sent of any of them (task_links), each with its own descendants (a retry
sent by Lookout is the root of its own workflow). What Celery's events cannot tell (group
membership, chord headers, link callbacks) is in docs/api.md.
"""
from __future__ import annotations

from sqlalchemy import func, or_, select

from lookout.core.store.models import Task, TaskLink
from lookout.dashboard.history.task_sql import list_columns

tasks = Task.__table__
links = TaskLink.__table__
WORKFLOW_LIMIT = 2000  # tasks in one workflow answer
WORKFLOW_DEPTH = 100  # nesting levels of a workflow tree; deeper tasks are counted, not shown
WORKFLOW_RETRY_ROUNDS = 20  # retries of retries followed
IN_CHUNK = 500  # ids per IN (...) list


def workflow_members(conn, root_id: str, limit: int
                     ) -> tuple[list[dict], int, dict[str, str]]:
    """The rows of the workflow (oldest first, at most `limit`), how many there are, and
    which of them are Lookout retries of which task."""
    rows, total = _workflow_members(conn, [root_id], limit)
    if not rows:
        return [], 0, {}
    seen = {row["uuid"] for row in rows}
    retry_of: dict[str, str] = {}  # the new task -> the task it retried
    frontier = list(seen)
    for _ in range(WORKFLOW_RETRY_ROUNDS):
        found = [(new, old) for chunk in _chunks(frontier) for new, old in conn.execute(
            select(links.c.task_uuid, links.c.retry_of)
            .where(links.c.retry_of.in_(chunk)))]
        fresh = [new for new, old in found if new not in retry_of and new not in seen]
        retry_of.update((new, old) for new, old in found if new not in retry_of)
        if not fresh:
            break
        more, count = _workflow_members(conn, fresh, limit - len(rows))
        if len(more) < count:  # cut by the limit: those left out stay out
            fetched = {row["uuid"] for row in more}
            for new in fresh:
                if new not in fetched:
                    del retry_of[new]
        more = [row for row in more if row["uuid"] not in seen]
        total += count
        rows.extend(more)
        seen.update(row["uuid"] for row in more)
        frontier = [row["uuid"] for row in more]
    return rows, total, retry_of


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i:i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK)]


def _workflow_members(conn, roots: list[str], limit: int) -> tuple[list[dict], int]:
    """The tasks that are, or have as root_id, one of `roots`: the oldest `limit` of them
    (by timestamp, uuid) and how many there are. Both columns are indexed."""
    rows: list[dict] = []
    total = 0
    for chunk in _chunks(roots):
        where = or_(tasks.c.root_id.in_(chunk), tasks.c.uuid.in_(chunk))
        total += conn.execute(select(func.count()).select_from(tasks).where(where)).scalar_one()
        if limit > 0:
            rows.extend(dict(row) for row in conn.execute(
                select(*list_columns()).where(where)
                .order_by(tasks.c.timestamp, tasks.c.uuid).limit(limit)).mappings())
    rows.sort(key=lambda row: (row["timestamp"], row["uuid"]))
    return rows[:max(limit, 0)], total


def _workflow_node(uuid: str, item: dict | None, state: str | None = None) -> dict:
    item = item or {}
    return {"uuid": uuid, "name": item.get("name"), "state": item.get("state", state),
            "worker": item.get("worker"), "received_at": item.get("received_at"),
            "started_at": item.get("started_at"), "runtime": item.get("runtime"),
            "retry_count": item.get("retries") or 0, "parent_id": item.get("parent_id"),
            "expired": item.get("expired"), "revoke_pending": item.get("revoke_pending", False),
            "lost": item.get("lost"), "seen": bool(item), "orphan": False, "deeper": 0,
            "children": [], "retries": []}


def workflow_tree(root_id: str, items: list[dict], retry_of: dict[str, str]
                  ) -> tuple[dict, dict[str, int]]:
    """The nested tree of a workflow's tasks (oldest first at each level) and counts by
    state; built without recursion, so a chain of any length is fine.

    A task hangs under its parent_id; a retry Lookout sent hangs in its original's
    `retries`, never among its children, and a retry by Celery is the same task (its
    `retry_count`). A task whose parent is not among `items` (not seen, cut by the limit,
    or itself, which the collector no longer stores: Celery's retry of a top-level task
    names it as its own parent) hangs under the root, marked `orphan`; so does a task in
    a parent_id cycle.
    Nodes nested deeper than WORKFLOW_DEPTH keep none of their subtree but its size.
    """
    nodes = {item["uuid"]: _workflow_node(item["uuid"], item) for item in items}
    if root_id not in nodes:  # the root's own events were never seen
        nodes[root_id] = _workflow_node(root_id, None)
    for new in retry_of:  # sent by Lookout, no event seen yet: what Celery calls PENDING
        nodes.setdefault(new, _workflow_node(new, None, "PENDING"))
    root = nodes[root_id]
    held_in: dict[str, list] = {}  # uuid -> the list holding it
    for uuid, node in nodes.items():
        if uuid == root_id:
            continue
        original, parent = retry_of.get(uuid), node["parent_id"]
        if original in nodes and original != uuid:
            held_in[uuid] = nodes[original]["retries"]
        elif parent in nodes and parent != uuid:
            held_in[uuid] = nodes[parent]["children"]
        else:
            node["orphan"] = True
            held_in[uuid] = root["children"]
        held_in[uuid].append(node)
    reached = _reach(root, set())
    for uuid, node in nodes.items():  # in a cycle: unreachable from the root
        if uuid not in reached:
            held_in[uuid][:] = [other for other in held_in[uuid] if other is not node]
            node["orphan"] = True
            root["children"].append(node)
            _reach(node, reached)
    level, depth = [root], 0
    while level:
        depth += 1
        if depth == WORKFLOW_DEPTH:
            for node in level:
                node["deeper"] = len(_reach(node, set())) - 1
                node["children"], node["retries"] = [], []
            break
        level = [child for node in level for child in node["children"] + node["retries"]]
    states: dict[str, int] = {}
    for node in nodes.values():
        if node["state"] is not None:
            states[node["state"]] = states.get(node["state"], 0) + 1
    return root, states


def _reach(start: dict, reached: set) -> set:
    """Adds the uuids of `start` and everything under it to `reached`."""
    stack = [start]
    while stack:
        node = stack.pop()
        if node["uuid"] in reached:
            continue
        reached.add(node["uuid"])
        stack.extend(node["children"] + node["retries"])
    return reached


