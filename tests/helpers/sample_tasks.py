"""Celery app and tasks the tests run on real workers.

The broker comes from LOOKOUT_TEST_BROKER so one module serves Redis and RabbitMQ tests.
"""
import os
import time

from celery import Celery

# LOOKOUT_TEST_BACKEND: a result backend, for the tests that reconcile with one.
BACKEND = os.environ.get("LOOKOUT_TEST_BACKEND") or None
app = Celery("sample_tasks", broker=os.environ.get("LOOKOUT_TEST_BROKER",
                                                   "redis://127.0.0.1:6379/0"),
             backend=BACKEND)
app.conf.update(
    task_send_sent_event=True,
    # LOOKOUT_TEST_EVENTS=0: a worker whose task events someone must switch on.
    worker_send_task_events=os.environ.get("LOOKOUT_TEST_EVENTS", "1") == "1",
    task_ignore_result=BACKEND is None,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    beat_schedule={
        "tick-every-5s": {"task": "sample.add", "schedule": 5.0, "args": (1, 2)},
    },
)


@app.task(name="sample.add")
def add(x, y):
    return x + y


@app.task(name="sample.fail")
def fail(message="boom"):
    raise ValueError(message)


@app.task(name="sample.retry", bind=True, max_retries=2)
def retry(self, countdown=0.2):
    if self.request.retries < self.max_retries:
        raise self.retry(countdown=countdown, exc=RuntimeError("try again"))
    return "retried"


@app.task(name="sample.sleep")
def sleep(seconds=30.0):
    time.sleep(seconds)
    return seconds


@app.task(name="sample.echo")
def echo(*args, **kwargs):
    return {"args": args, "kwargs": kwargs}


@app.task(name="sample.flaky")
def flaky(fail=False):
    """Fails when told to: drives failure-rate alerts up and back down."""
    if fail:
        raise ConnectionError("upstream refused")
    return "ok"
