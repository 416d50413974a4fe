"""Flower 2.x's REST API paths, parameters and response shapes, answered by Lookout.

    GET  /api/workers  /api/tasks  /api/task/types  /api/task/info/<id>
         /api/task/result/<id>  /api/queues/length  (/healthcheck: dashboard/health)
    POST /api/task/apply|async-apply|send-task/<name>  /api/task/revoke|abort/<id>
         /api/task/rate-limit|timeout/<name>  /api/worker/shutdown/<worker>
         /api/worker/pool/restart|grow|shrink|autoscale/<worker>
         /api/worker/queue/add-consumer|cancel-consumer/<worker>

Guarded like the native API, not like Flower: reads need a login or a token, every POST
needs the operator role (refused in read-only mode), a CSRF token when it rides on a
session, and leaves one audit record whatever happens; the target is noted before the
role check so refusals name it. Errors are Lookout's JSON errors (400s name their
parameter) where Flower answers plain text. What else differs is in docs/api.md.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, current_app, request

from lookout.core.sender import TaskSender
from lookout.dashboard.audit.recorder import audited, note, record_request
from lookout.dashboard.audit.service import SECRET_KEYS
from lookout.dashboard.flowerapi.params import (
    MAX_OFFSET,
    MAX_WAIT,
    TASK_LIST_PARAMS,
    arguments,
    flag,
    keep_body,
    number,
    query,
    require,
    short_text,
    task_call,
    task_list_query,
)
from lookout.dashboard.flowerapi.calls import TaskCalls
from lookout.dashboard.flowerapi.service import FlowerService
from lookout.dashboard.flowerapi.workers import WorkerCache
from lookout.dashboard.web.errors import ApiError
from lookout.dashboard.web.roles import require_role

bp = Blueprint("flowerapi", __name__)
bp.url_value_preprocessor(keep_body)  # before the app's hooks read the body as a form
bp.after_request(record_request)
TARGETS = ("task_id", "taskname", "hostname")  # the URL part naming what is acted on
# Flower's worker control paths -> ControlService command, and the parameters each takes.
WORKER_ROUTES = {"shutdown": "shutdown", "pool/restart": "pool_restart",
                 "pool/grow": "pool_grow", "pool/shrink": "pool_shrink",
                 "pool/autoscale": "autoscale", "queue/add-consumer": "add_consumer",
                 "queue/cancel-consumer": "cancel_consumer"}
WORKER_PARAMS = {"shutdown": (), "pool_restart": (), "pool_grow": ("n",), "pool_shrink": ("n",),
                 "autoscale": ("min", "max"), "add_consumer": ("queue",),
                 "cancel_consumer": ("queue",)}
REQUIRED = {"autoscale": ("min", "max"), "add_consumer": ("queue",),
            "cancel_consumer": ("queue",)}


def _services(state) -> None:
    """Each app's Flower service and task calls, made when the blueprint is registered."""
    app, ext = state.app, state.app.extensions
    workers = WorkerCache(ext["lookout.inspector"], ext["lookout.fleet"],
                          ext["lookout.history"].clock)
    ext["lookout.flowerapi"] = FlowerService(
        ext["lookout.engine"], ext["lookout.history"], ext["lookout.control"],
        ext["lookout.inspector"], ext["lookout.queues"], workers)
    settings = app.config["LOOKOUT"]
    ext["lookout.flowerapi.calls"] = TaskCalls(ext["lookout.engine"], settings,
                                               TaskSender(settings))


bp.record_once(_services)


def _service() -> FlowerService:
    return current_app.extensions["lookout.flowerapi"]


def _calls() -> TaskCalls:
    return current_app.extensions["lookout.flowerapi.calls"]


def flower_json(data: Any):
    """JSON with keys in the order given: /api/tasks's order is the sort order."""
    return current_app.response_class(current_app.json.dumps(data, sort_keys=False) + "\n",
                                      mimetype="application/json")


@bp.before_request
def _operators_only() -> None:
    """Every POST: note its target, then refuse without the operator role or in read-only."""
    if request.method == "POST":
        note(targets=[str(v) for k, v in (request.view_args or {}).items() if k in TARGETS])
        require_role("operator", control=True)


# -- reads -------------------------------------------------------------------------------
@bp.get("/api/workers")
def list_workers():
    args = query(frozenset({"refresh", "workername", "status"}))
    workername = args.get("workername") or None
    return flower_json(_service().workers.answer(
        flag(args.get("refresh"), "refresh"),
        None if workername is None else short_text(workername, "workername"),
        flag(args.get("status"), "status")))


@bp.get("/api/tasks")
def list_tasks():
    """Flower's body (an object keyed by id, no room for a marker): a page that stops
    short of the tasks that match says so in headers, so a script relying on Flower
    returning everything it holds can tell it got the first 1,000 (the default limit)."""
    wanted = task_list_query(query(TASK_LIST_PARAMS))
    listed, more = _service().list_tasks(wanted)
    response = flower_json(dict(listed))
    if more:
        response.headers["X-Lookout-More"] = "true"
        following = wanted.offset + wanted.limit
        if following <= MAX_OFFSET:  # deeper: /api/v1/tasks and its cursors
            args = {**request.args.to_dict(), "offset": str(following),
                    "limit": str(wanted.limit)}
            response.headers["Link"] = f'<{request.path}?{urlencode(args)}>; rel="next"'
    return response


@bp.get("/api/task/types")
def task_types():
    query(frozenset())
    return flower_json({"task-types": _service().task_types()})


@bp.get("/api/task/info/<path:task_id>")
def task_info(task_id: str):
    query(frozenset())
    return flower_json(_service().task(task_id))


@bp.get("/api/task/result/<path:task_id>")
def task_result(task_id: str):
    timeout = query(frozenset({"timeout"})).get("timeout")
    return flower_json(_calls().result(
        task_id, None if timeout in (None, "") else number(timeout, "timeout", 0, MAX_WAIT)))


@bp.get("/tasks/datatable")
def tasks_datatable():
    """Flower's UI feeds its task table from here; Lookout's pages do not, and without this
    the path read as the page of a task named "datatable" (a 200 a script could not parse)."""
    raise ApiError(404, "Flower's UI endpoint /tasks/datatable is not served: use "
                        "/api/tasks (limit, offset) or /api/v1/tasks (totals and cursors)")


@bp.get("/api/queues/length")
def queue_lengths():
    query(frozenset())
    return flower_json({"active_queues": _service().queue_lengths()})


# -- sending tasks -----------------------------------------------------------------------
@bp.post("/api/task/apply/<path:taskname>")
@audited("task.apply")
def task_apply(taskname: str):
    return _send(taskname, wait=True)


@bp.post("/api/task/async-apply/<path:taskname>")
@audited("task.async_apply")
def task_async_apply(taskname: str):
    return _send(taskname)


@bp.post("/api/task/send-task/<path:taskname>")
@audited("task.send")
def task_send(taskname: str):
    return _send(taskname, by_name=True)


def _send(taskname: str, wait: bool = False, by_name: bool = False):
    call = task_call(wait=wait)
    kwargs = {k: "***" if any(s in str(k).lower() for s in SECRET_KEYS) else v
              for k, v in call.kwargs.items()}
    note(parameters={"args": call.args, "kwargs": kwargs, "options": call.options,
                     "timeout": call.timeout})
    response = _calls().send(taskname, call, wait=wait, by_name=by_name)
    note(targets=[taskname, response["task-id"]])
    return flower_json(response)


# -- controls ----------------------------------------------------------------------------
@bp.post("/api/task/revoke/<path:task_id>")
@audited("task.revoke")
def task_revoke(task_id: str):
    values = arguments(frozenset({"terminate", "signal"}))
    terminate = flag(values.get("terminate"), "terminate")
    note(parameters={"terminate": terminate, "signal": values.get("signal")})
    result = _service().revoke(task_id, terminate, values.get("signal"))
    note(parameters=result["parameters"], replies=result["replies"])
    return flower_json({"message": result["message"]})


@bp.post("/api/task/abort/<path:task_id>")
@audited("task.abort")
def task_abort(task_id: str):
    arguments(frozenset())
    return flower_json(_calls().abort(task_id))


@bp.post("/api/task/rate-limit/<path:taskname>")
@audited("rate_limit")
def task_rate_limit(taskname: str):
    values = arguments(frozenset({"ratelimit", "workername"}))
    require(values, "workername", "ratelimit")
    return _limited("rate_limit", taskname, values)


@bp.post("/api/task/timeout/<path:taskname>")
@audited("time_limit")
def task_timeout(taskname: str):
    values = arguments(frozenset({"soft", "hard", "workername"}))
    require(values, "workername")
    return _limited("time_limit", taskname, values)


def _limited(command: str, taskname: str, values: dict):
    note(targets=[taskname, str(values["workername"])], parameters=values)
    result = _service().limit(command, taskname, values)
    return _done(result, targets=[taskname, *result["targets"]])


@audited(lambda args: "worker." + args.get("command", "unknown"))
def worker_command(hostname: str, command: str):
    values = arguments(frozenset(WORKER_PARAMS[command]))
    require(values, *REQUIRED.get(command, ()))
    note(parameters=values)
    return _done(_service().worker_command(hostname, command, values))


for _path, _command in WORKER_ROUTES.items():
    bp.add_url_rule(f"/api/worker/{_path}/<path:hostname>", endpoint=f"worker_{_command}",
                    view_func=worker_command, methods=["POST"], defaults={"command": _command})


def _done(result: dict, targets: list[str] | None = None):
    """Record what was sent and each reply; Flower's message, or its 403 when refused."""
    note(targets=targets or result["targets"], parameters=result["parameters"],
         replies=result["replies"])
    if not result["ok"]:
        note(outcome="error")  # the worker refused: not a refusal of the caller
        raise ApiError(403, result["message"])
    return flower_json({"message": result["message"]})
