"""A Celery app whose beat_schedule holds awkward entries, for the Schedules browser test:
markup in a name and in arguments, a slash in a name, crontabs in the app's zone. Its
entries route to BEAT_TEST_QUEUE (the test worker's own queue)."""
import os

from celery import Celery
from celery.schedules import crontab

HOSTILE = '<img src=x onerror="window.__pwned=1">'
queue = {"queue": os.environ.get("BEAT_TEST_QUEUE", "celery")}

app = Celery("beat_app", set_as_current=False)
app.conf.timezone = "Asia/Shanghai"
app.conf.beat_schedule = {
    "tick-every-5s": {"task": "sample.add", "schedule": 5.0, "args": (1, 2),
                      "options": queue},
    HOSTILE: {"task": "sample.add", "schedule": crontab(minute=0, hour=8),
              "args": ("<b>bold</b>", "</td>"), "options": queue},
    "reports/daily": {"task": "sample.add", "schedule": crontab(minute="*/15"),
                      "args": (5, 5), "options": queue},
}
