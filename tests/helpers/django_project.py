"""A small real Django project with django-celery-beat, written into a temporary folder.

`djproj` keeps its beat schedule in the database (DatabaseScheduler, set in settings as
most projects do), has one entry in CELERY_BEAT_SCHEDULE that beat copies into the
database, and tasks that succeed or fail. `seed.py` creates the database entries the way
a user does in the admin: every schedule kind, enabled and disabled, with their own zones,
and two entries that share one task name with different arguments.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.support import TESTS, VENV_BIN, Process, wait_for

SETTINGS = '''\
import os

SECRET_KEY = "not-secret"
INSTALLED_APPS = ["django_celery_beat"]
DATABASES = {"default": %(database)r}
if DATABASES["default"]["ENGINE"].endswith("mysql"):  # PyMySQL stands in for mysqlclient
    import pymysql

    pymysql.install_as_MySQLdb()
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CELERY_BROKER_URL = %(broker)r
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SYNC_EVERY = 1  # beat writes last_run_at after every send
CELERY_BEAT_SCHEDULE = {
    "from-settings": {"task": "djproj.report", "schedule": 3600.0, "args": ["settings"]},
}
'''
CELERY = '''\
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")
app = Celery("djproj")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.task(name="djproj.report")
def report(kind, **options):
    return kind


@app.task(name="djproj.flaky")
def flaky():
    raise RuntimeError("made to fail")
'''
SEED = '''\
import datetime
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")
django.setup()
from django.utils import timezone
from django_celery_beat.models import (ClockedSchedule, CrontabSchedule, IntervalSchedule,
                                       PeriodicTask)

seconds = IntervalSchedule.SECONDS
every_3s = IntervalSchedule.objects.create(every=3, period=seconds)
every_8s = IntervalSchedule.objects.create(every=8, period=seconds)
every_5s = IntervalSchedule.objects.create(every=5, period=seconds)
shanghai = CrontabSchedule.objects.create(minute="*/1", hour="*", day_of_week="*",
                                          day_of_month="*", month_of_year="*",
                                          timezone="Asia/Shanghai")
daily = CrontabSchedule.objects.create(minute="0", hour="8", day_of_week="*",
                                       day_of_month="*", month_of_year="*",
                                       timezone="Europe/Berlin")
clocked = ClockedSchedule.objects.create(
    clocked_time=timezone.now() + datetime.timedelta(days=2))
PeriodicTask.objects.create(name="every-3s", task="djproj.report", interval=every_3s,
                            args='["fast"]', description="fast ticker")
PeriodicTask.objects.create(name="every-8s", task="djproj.report", interval=every_8s,
                            args='["slow"]', kwargs='{"full": true}')
PeriodicTask.objects.create(name="shanghai-minutely", task="djproj.report", crontab=shanghai,
                            args='["cron"]')
PeriodicTask.objects.create(name="daily-0800", task="djproj.report", crontab=daily,
                            args='["daily"]', queue="celery")
PeriodicTask.objects.create(name="switched-off", task="djproj.report", interval=every_8s,
                            args='["off"]', enabled=False)
PeriodicTask.objects.create(name="once-later", task="djproj.report", clocked=clocked,
                            one_off=True, args='["once"]')
PeriodicTask.objects.create(name="always-failing", task="djproj.flaky", interval=every_5s)
print("seeded", PeriodicTask.objects.count())
'''
DATABASE_ENTRIES = ("every-3s", "every-8s", "shanghai-minutely", "daily-0800",
                    "switched-off", "once-later", "always-failing")


class DjangoProject:
    """The project folder, its commands, and the worker and beat it runs."""

    def __init__(self, root: Path, database: dict, broker: str):
        self.root, self.broker = root, broker
        package = root / "djproj"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("from djproj.celery import app as celery_app\n")
        (package / "settings.py").write_text(SETTINGS % {"database": database,
                                                         "broker": broker})
        (package / "celery.py").write_text(CELERY)
        (root / "seed.py").write_text(SEED)
        # No DJANGO_SETTINGS_MODULE: djproj/celery.py sets it, as Django projects do.
        self.env = {"PYTHONPATH": f"{root}:{TESTS}", "LOOKOUT_CELERY_APP": "", "LOOKOUT_BROKER_URL": "",
                    "LOOKOUT_DATABASE_URL": "", "LOOKOUT_BEAT_DATABASE_URL": ""}
        self.processes: list[Process] = []

    def run(self, *args: str) -> str:
        import os

        env = {**os.environ, **self.env}
        result = subprocess.run([sys.executable, *args], cwd=self.root, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def setup(self) -> None:
        self.run("-m", "django", "migrate", "--noinput", "--settings", "djproj.settings")
        assert "seeded 7" in self.run("seed.py")

    def start(self, name: str, args: list[str]) -> Process:
        process = Process(args, self.root / f"{name}.log", env=self.env, cwd=self.root)
        process.name = name
        self.processes.append(process)
        return process

    def worker(self) -> Process:
        worker = self.start("worker", [str(VENV_BIN / "celery"), "-A", "djproj", "worker",
                                       "-E", "-P", "solo", "-n", "djworker@%h", "-l", "info",
                                       "--without-gossip", "--without-mingle"])
        worker.wait_output("ready", 60)
        return worker

    def beat(self) -> Process:
        beat = self.start("beat", [str(VENV_BIN / "celery"), "-A", "djproj", "beat",
                                   "-l", "info"])
        beat.wait_output("beat: Starting", 60)
        return beat

    def stop(self, process: Process) -> None:
        process.stop()
        self.processes.remove(process)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


def wait_json(get, predicate, timeout: float, message: str):
    """Poll an API getter until `predicate(body)` holds; return the body."""
    holder = {}

    def check():
        holder["body"] = get()
        return predicate(holder["body"])
    wait_for(check, timeout, 0.5, message)
    return holder["body"]
