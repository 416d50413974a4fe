"""Browser-test helpers: a real Lookout with a real worker, and what a page did.

The fixtures built on these are in browser/conftest.py. Tasks go to the worker's own
queue, so other modules' traffic on the same broker never confuses a test. Playwright
uses the system chromium (never `playwright install`); Chart.js and the Socket.IO client
are the builds bundled in the package (static/vendor/).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from helpers.support import VENV_BIN, Process, wait_for
from helpers.workers import RunningWorker, launch_worker, send, task_client, unique

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """(status, decoded body) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@dataclass
class Lookout:
    """A running `lookout run` and the worker whose tasks it watches."""

    url: str
    database_url: str
    worker: RunningWorker
    process: Process
    client: Any = field(default=None, repr=False)  # a Celery app that sends to the broker
    starter: Callable[[], Process] | None = field(default=None, repr=False)

    def restart_server(self, while_down: Callable[[], None] | None = None) -> None:
        """Stop `lookout run`, call `while_down()`, start it again (same port and store)."""
        self.process.stop()
        if while_down is not None:
            while_down()
        self.process = self.starter()

    def send(self, name: str, *args: Any, **kwargs: Any) -> str:
        """Send a sample task to this worker's queue; returns its id."""
        return send(self.client, self.worker, name, *args, **kwargs)

    def api(self, path: str) -> Any:
        status, body = get_json(self.url + path)
        assert status == 200, (path, status, body)
        return body

    def wait_state(self, task_id: str, state: str, timeout: float = 30.0) -> dict:
        """Until the history API reports `state` for the task (the store, not the page)."""
        def reached():
            status, body = get_json(f"{self.url}/api/v1/tasks/{task_id}")
            return body if status == 200 and body["state"] == state else None
        return wait_for(reached, timeout, interval=0.2, message=f"{task_id} in {state}")


@contextlib.contextmanager
def running_lookout(broker: str, tmp: Path, args: Sequence[str] = ("--no-auth",),
                    env: dict[str, str] | None = None) -> Iterator[Lookout]:
    """`lookout run` on a free port with a real collector, plus a real worker; stopped on
    exit. `args` are extra CLI options (default: no login), `env` extra LOOKOUT_* values."""
    database_url = f"sqlite:///{tmp / 'lookout.db'}"
    worker = launch_worker(tmp, broker)
    port = free_port()
    full_env = {"LOOKOUT_COLLECTOR_NAME": unique("browser"),
                "LOOKOUT_EVENT_QUEUE_NAME": unique("lookout.events"),
                "LOOKOUT_SECRET_KEY": "browser-tests", **(env or {})}
    command = [str(VENV_BIN / "lookout"), "run", "--broker", broker, "--database", database_url,
               "--port", str(port), *args]
    url = f"http://127.0.0.1:{port}"
    starts = itertools.count()

    def start() -> Process:
        process = Process(command, tmp / f"lookout-{next(starts)}.log", env=full_env)

        def healthy():
            if process.popen.poll() is not None:
                raise AssertionError(f"lookout exited:\n{process.output()[-3000:]}")
            return get_json(url + "/healthz", timeout=2)[0] == 200
        try:
            wait_for(healthy, 60, interval=0.2, message="lookout healthy")
        except BaseException:
            process.stop()
            raise
        return process

    running = None
    try:
        with task_client(broker) as client:
            running = Lookout(url, database_url, worker, start(), client, starter=start)
            yield running
    finally:
        code = running.process.stop() if running else None
        worker.process.stop()
        if code not in (0, None):
            print(f"lookout exited with {code}; log: {running.process.log_path}")


@dataclass
class PageWatch:
    """What a page did that a test may want to assert was nothing: dialogs, errors."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # uncaught script errors
    csp: list[str] = field(default_factory=list)  # Content-Security-Policy violations

    def assert_clean(self) -> None:
        assert not self.dialogs, self.dialogs
        assert not self.errors, self.errors
        assert not self.csp, self.csp


def screenshot_writer(screenshot):
    """page.screenshot(path=...) that writes the file itself.

    Playwright writes `path` from a thread pool that then outlives the test, which the
    suite's leaked-thread check rightly reports; the bytes are all we need from it.
    """
    def take(*, path: str | Path | None = None, **options: Any) -> bytes:
        data = screenshot(**options)
        if path is not None:
            Path(path).write_bytes(data)
        return data
    return take
