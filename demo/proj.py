"""A small Celery app that keeps a demo dashboard busy: `python demo/run.py` runs it.

Beat sends a trickle of work every few seconds: orders that succeed, payments that
sometimes fail, e-mails that retry, reports that run long, and a checkout that spawns
children (so task pages show parents, roots and children). The broker comes from
LOOKOUT_DEMO_BROKER, which demo/run.py sets for every process it starts.
"""
import os
import random
import time

from celery import Celery

app = Celery("lookout_demo",
             broker=os.environ.get("LOOKOUT_DEMO_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_send_sent_event=True,  # so tasks show up (with their queue) as soon as they are sent
    worker_send_task_events=True,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    task_routes={"demo.reports.build": {"queue": "slow"}},
    beat_schedule={
        "trickle": {"task": "demo.trickle", "schedule": 2.0},
        "nightly-report": {"task": "demo.reports.build", "schedule": 45.0, "args": ("daily",)},
        "cache-cleanup": {"task": "demo.maintenance.cleanup", "schedule": 15.0},
    },
)


@app.task(name="demo.trickle")
def trickle():
    """A random handful of everyday work, so the charts always have something to show."""
    for _ in range(random.randint(2, 6)):
        roll = random.random()
        if roll < 0.45:
            process_order.delay(random.randint(1000, 9999))
        elif roll < 0.70:
            charge.delay(round(random.uniform(5, 500), 2))
        elif roll < 0.85:
            send_email.delay(f"user{random.randint(1, 99)}@example.com")
        else:
            checkout.delay(random.randint(1, 500))


@app.task(name="demo.orders.process")
def process_order(order_id):
    time.sleep(random.uniform(0.05, 0.6))
    return {"order": order_id, "status": "packed"}


@app.task(name="demo.payments.charge")
def charge(amount):
    time.sleep(random.uniform(0.05, 0.3))
    if random.random() < 0.2:
        raise ValueError(f"card declined for {amount}")
    return {"charged": amount}


@app.task(name="demo.email.send", bind=True, max_retries=3)
def send_email(self, to):
    if random.random() < 0.4:
        raise self.retry(countdown=2, exc=ConnectionError("SMTP server busy"))
    return f"sent to {to}"


@app.task(name="demo.orders.checkout")
def checkout(cart_id):
    """A parent task: its children link back to it on their detail pages."""
    amount = round(random.uniform(10, 200), 2)
    charge.delay(amount)
    send_email.delay(f"cart{cart_id}@example.com")
    return {"cart": cart_id, "amount": amount}


@app.task(name="demo.reports.build")
def build_report(kind="adhoc"):
    time.sleep(random.uniform(10, 25))
    return f"{kind} report ready"


@app.task(name="demo.maintenance.cleanup")
def cleanup():
    time.sleep(random.uniform(0.5, 2))
    return random.randint(0, 40)
