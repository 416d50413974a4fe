"""Celery app and tasks for the Flower API tests: a result backend and an abortable task,
so apply, result and abort have something to wait on and read, in Flower and Lookout alike.

Broker and backend come from LOOKOUT_TEST_BROKER and LOOKOUT_TEST_BACKEND; the worker,
Flower and Lookout all load this module with -A.
"""
import os
import time

from celery import Celery
from celery.contrib.abortable import AbortableTask

from helpers import sample_tasks

BROKER = os.environ.get("LOOKOUT_TEST_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("flower_tasks", broker=BROKER,
             backend=os.environ.get("LOOKOUT_TEST_BACKEND", BROKER))
app.conf.update(
    task_send_sent_event=True,
    worker_send_task_events=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=3600,
)


# sample.add, sample.fail and sample.echo again, in an app with a result backend.
for _name in ("add", "fail", "echo"):
    app.task(name=f"flower.{_name}")(getattr(sample_tasks, _name).run)


@app.task(name="flower.wait", bind=True, base=AbortableTask)
def wait(self, seconds=60.0):
    """Runs until aborted (through the result backend) or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if self.is_aborted():
            return "aborted"
        time.sleep(0.1)
    return "done"
