"""An inspect call that outlives the inspector's deadline is reported as unanswered, and
its late answer, when it comes, is dropped without an error on its thread.

(It once cancelled the unanswered future, so the call's thread raised InvalidStateError
setting a result on it.) The broker is not what this tests: the call is a stand-in.
"""
from __future__ import annotations

import threading

from helpers.support import wait_for
from lookout.core.inspector import Inspector


def test_a_late_answer_is_dropped_quietly(monkeypatch):
    inspector = Inspector("redis://127.0.0.1:1/0", timeout=0.05, connect_timeout=0.05)
    release = threading.Event()
    finished = threading.Event()
    thread_errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: thread_errors.append(args.exc_value))

    def slow_call(command, destination, *rest):
        release.wait(10)
        finished.set()
        return {"worker@a": [{"name": "celery"}]}

    monkeypatch.setattr(inspector, "_call", slow_call)
    replies, errors = inspector.run({"q": ("active_queues",)}, None)
    assert replies == {}
    assert errors["q"].startswith("no answer within")

    release.set()
    wait_for(finished.is_set, 5, message="the late call to finish")
    wait_for(lambda: inspector._slots.acquire(blocking=False), 5,
             message="the late call's slot to be released")
    assert thread_errors == []
