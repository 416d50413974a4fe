"""apply, async-apply, send-task, result and abort: sending tasks and reading the backend.

Flower sends with the app it was started with (`celery -A proj flower`) and reads results
from that app's result backend. Lookout sends with core/sender.py, as its other controls
that start work do (through the app bound by -A when Lookout watches its broker, else a
private client that also emits task-sent events), and reads results from the bound app's
backend. A registered task is sent with its own options (queue, exchange, routing key,
priority), as `apply_async` would.

Differences from Flower, each on purpose:
- a task must be registered in the app or seen in the history (Flower: registered only,
  so without -A it refuses every task but Celery's own);
- the task is always sent, never run inside Lookout (an app's `task_always_eager`);
- `apply` waits at most MAX_WAIT seconds (Flower: forever) and refuses at once, before
  sending, when there is no result backend to wait on (Flower sends, then fails with 500);
- an unreachable broker or backend is a 503 at once (no retry loop).
"""
from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import Engine, select

from lookout.core.sender import TaskSender
from lookout.core.store.models import Task
from lookout.dashboard.flowerapi.params import MAX_WAIT, TaskCall
from lookout.dashboard.flowerapi.shapes import safe_result
from lookout.dashboard.web.errors import ApiError

TASK_OPTIONS = ("queue", "exchange", "routing_key", "priority")  # a task's own, if set


class TaskCalls:
    """Sends tasks and reads results for the Flower API; nothing connects until used."""

    def __init__(self, engine: Engine, settings, sender: TaskSender):
        self.engine = engine
        self.settings = settings
        self.sender = sender

    # -- sending -------------------------------------------------------------------
    def send(self, task_name: str, call: TaskCall, *, by_name: bool = False,
             wait: bool = False) -> dict[str, Any]:
        """Send one task; {"task-id"} plus its "state" when there is a backend to ask.

        `by_name` (send-task) skips the registry check, as Flower does; `wait` (apply)
        waits for the result.
        """
        backend = self._backend_app()
        if wait and backend is None:
            raise ApiError(503, self._no_backend("apply (it waits for the result)"))
        user = self._user_app()
        task = None if by_name or user is None else user.tasks.get(task_name)
        if not by_name and task is None and not self._seen(task_name):
            raise ApiError(404, f"Unknown task '{task_name[:200]}'")
        own = {} if task is None else {name: getattr(task, name, None) for name in TASK_OPTIONS}
        options = {**{k: v for k, v in own.items() if v is not None}, **call.options}
        # A broker that is down raises BrokerUnavailable: a 503 from web/errors.py.
        task_id = self.sender.send(task_name, call.args, call.kwargs, **options)
        response: dict[str, Any] = {"task-id": task_id}
        if wait:
            return self._wait(backend, task_id, response, call.timeout or MAX_WAIT)
        if backend is not None:
            with _backend_errors(backend):
                response["state"] = backend.AsyncResult(task_id).state
        return response

    # -- the result backend --------------------------------------------------------
    def result(self, task_id: str, timeout: float | None) -> dict[str, Any]:
        """GET /api/task/result: state, and the result once ready (waiting `timeout`)."""
        backend = self._backend_app()
        if backend is None:
            raise ApiError(503, self._no_backend("reading a result"))
        with _backend_errors(backend):
            response = {"task-id": task_id, "state": backend.AsyncResult(task_id).state}
            if timeout:
                return self._wait(backend, task_id, response, timeout)
            result = backend.AsyncResult(task_id)
            if result.ready():
                _add_result(response, result)
        return response

    def abort(self, task_id: str) -> dict[str, str]:
        """Mark the task ABORTED in the backend, for an AbortableTask to notice (Flower's
        abort: the task itself must check `is_aborted()`; others run on)."""
        from celery.contrib.abortable import AbortableAsyncResult

        backend = self._backend_app()
        if backend is None:
            raise ApiError(503, self._no_backend("abort (it is a state in the backend)"))
        with _backend_errors(backend):
            AbortableAsyncResult(task_id, app=backend).abort()
        return {"message": f"Aborted '{task_id}'"}

    @staticmethod
    def _wait(backend, task_id: str, response: dict, timeout: float) -> dict[str, Any]:
        """Wait for the result up to `timeout`; on timeout, the state so far (as Flower)."""
        from celery.exceptions import TimeoutError as CeleryTimeout

        with _backend_errors(backend):
            result = backend.AsyncResult(task_id)
            try:
                result.get(timeout=timeout, propagate=False)
            except CeleryTimeout:
                response["state"] = result.state
                return response
            _add_result(response, result)
        return response

    # -- which app -----------------------------------------------------------------
    def _user_app(self):
        return self.settings.extra.get("celery_app")

    def _backend_app(self):
        from celery.backends.base import DisabledBackend

        app = self._user_app()
        return None if app is None or isinstance(app.backend, DisabledBackend) else app

    def _seen(self, task_name: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.scalar(select(Task.uuid).where(Task.name == task_name).limit(1))
        return found is not None

    def _no_backend(self, what: str) -> str:
        app = self._user_app()
        if app is None:
            return f"{what} needs a result backend, and no Celery app is bound " \
                   "(-A or LOOKOUT_CELERY_APP)"
        return f"{what} needs a result backend, and the Celery app {app.main!r} has none"


@contextlib.contextmanager
def _backend_errors(app):
    """The result backend's connection errors become a 503 (no retry loop)."""
    from kombu.exceptions import OperationalError

    errors = (OperationalError, OSError, *(getattr(app.backend, "connection_errors", ()) or ()))
    try:
        yield
    except errors as exc:
        raise ApiError(503, f"result backend unreachable: {exc}") from None


def _add_result(response: dict, result) -> None:
    """Flower's fields of a finished task: result (its repr if not JSON), traceback on
    failure, and the state."""
    response["result"] = safe_result(result.result)
    if result.state == "FAILURE":
        response["traceback"] = result.traceback
    response["state"] = result.state
