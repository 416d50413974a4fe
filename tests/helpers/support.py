"""Helpers shared by tests: polling with a deadline, and managed subprocesses."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
VENV_BIN = Path(sys.executable).parent


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1,
             message: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                         + (f" (last error: {last_error!r})" if last_error else ""))


class Process:
    """A subprocess with its output in a log file, stopped (and reaped) on `stop()`."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")
        full_env = {**os.environ, "PYTHONPATH": str(TESTS), **(env or {})}
        self.popen = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                      env=full_env, cwd=cwd or ROOT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_output(self, text: str, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if self.popen.poll() is not None and text not in self.output():
                raise AssertionError(f"{self.args[:3]} exited early:\n{self.output()[-3000:]}")
            return text in self.output()
        wait_for(seen, timeout, message=f"{text!r} in output of {self.args[:3]}")

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the process group, then SIGKILL after `timeout`; return the exit code."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
            except ProcessLookupError:
                pass
        try:  # reap stragglers left in the group (e.g. prefork children)
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait(10)


def start_worker(tmp_path: Path, broker: str, hostname: str, queues: str = "celery",
                 concurrency: int = 2, extra: list[str] | None = None,
                 env: dict[str, str] | None = None, events: bool = True) -> Process:
    """A real `celery worker -E` on the sample tasks; returns once it says it is ready.
    `events=False`: without -E, as a worker whose events someone must switch on."""
    args = [str(VENV_BIN / "celery"), "-A", "helpers.sample_tasks", "worker",
            *(["-E"] if events else []),
            "-n", hostname, "-Q", queues, "-c", str(concurrency), "-l", "INFO",
            "--without-gossip", "--without-mingle", *(extra or [])]
    proc = Process(args, tmp_path / f"worker-{hostname}.log",
                   env={"LOOKOUT_TEST_BROKER": broker,
                        "LOOKOUT_TEST_EVENTS": "1" if events else "0", **(env or {})})
    proc.wait_output("ready.", timeout=60)
    return proc
