"""Schedule sources beyond the app's beat_schedule, each on its real store: RedBeat in a
private Redis, and django-celery-beat's tables on MariaDB read through
LOOKOUT_BEAT_DATABASE_URL with no Django in Lookout's process (tables made by Django's
own migrations, in a subprocess)."""
from __future__ import annotations

import os
import uuid

import pytest
from celery import Celery
from celery.schedules import crontab, schedule
from sqlalchemy import create_engine, text

from helpers.control import csrf_from
from helpers.django_project import DjangoProject

MARIADB = "mysql+pymysql://root@127.0.0.1:3306"


def test_redbeat_schedule_is_listed(private_redis, sqlite_url, make_app):
    from redbeat.schedulers import RedBeatSchedulerEntry

    app = Celery("rb", broker=f"{private_redis}/4", set_as_current=False)
    app.conf.update(beat_scheduler="redbeat.RedBeatScheduler",
                    redbeat_redis_url=f"{private_redis}/4", redbeat_key_prefix="rbtest:",
                    timezone="Europe/Paris")
    RedBeatSchedulerEntry("nightly", "proj.nightly", crontab(minute=15, hour=3),
                          args=["full"], app=app).save()
    RedBeatSchedulerEntry("poll", "proj.poll", schedule(30), kwargs={"fast": True},
                          app=app).save()
    RedBeatSchedulerEntry("paused", "proj.poll", schedule(60), enabled=False,
                          app=app).save()
    web = make_app(sqlite_url, broker_url=f"{private_redis}/4")
    web.config["LOOKOUT"].extra["celery_app"] = app
    body = web.test_client().get("/api/v1/schedules").get_json()
    assert [s["name"] for s in body["sources"]] == ["app", "redbeat"]
    assert body["sources"][1]["error"] is None and body["sources"][1]["entries"] == 3
    items = {i["name"]: i for i in body["items"]}
    assert items["nightly"]["source"] == "redbeat"
    assert items["nightly"]["schedule"]["description"] == "at 03:15 every day (Europe/Paris)"
    assert items["nightly"]["args"] == "['full']"
    assert items["poll"]["schedule"]["seconds"] == 30
    assert items["poll"]["kwargs"] == "{'fast': True}"
    assert items["paused"]["enabled"] is False
    assert items["paused"]["health"]["status"] == "disabled"
    assert items["poll"]["can_toggle"] is False


@pytest.fixture
def mariadb_beat(tmp_path):
    """A MariaDB database holding django-celery-beat's tables and the seeded entries."""
    name = f"djbeat_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(MARIADB)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    project = DjangoProject(tmp_path / "proj", {
        "ENGINE": "django.db.backends.mysql", "NAME": name, "USER": "root",
        "HOST": "127.0.0.1", "PORT": "3306"}, "redis://127.0.0.1:1/0")
    try:
        project.setup()
        yield f"{MARIADB}/{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def test_beat_database_url_reads_mariadb_without_django(mariadb_beat, sqlite_url, make_app):
    web = make_app(sqlite_url, beat_database_url=mariadb_beat, broker_url="memory://")
    client = web.test_client()
    body = client.get("/api/v1/schedules").get_json()
    assert body["configured"] is True and [s["name"] for s in body["sources"]] == [
        "django-celery-beat"]
    assert "LOOKOUT_BEAT_DATABASE_URL" in body["sources"][0]["detail"]
    items = {i["name"]: i for i in body["items"]}
    assert items["shanghai-minutely"]["schedule"]["timezone"] == "Asia/Shanghai"
    assert items["once-later"]["schedule"]["kind"] == "clocked"
    assert items["switched-off"]["enabled"] is False
    # disable as the admin does: flag, cleared last run, change marker for a running beat
    csrf = csrf_from(client.get("/schedules").get_data(as_text=True))
    response = client.post("/api/v1/schedules/django-celery-beat/every-3s/disable",
                           headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200, response.get_json()
    engine = create_engine(mariadb_beat)
    with engine.connect() as conn:
        enabled = conn.execute(text("SELECT enabled FROM django_celery_beat_periodictask "
                                    "WHERE name = 'every-3s'")).scalar_one()
        marker = conn.execute(text("SELECT last_update FROM "
                                   "django_celery_beat_periodictasks WHERE ident = 1")).scalar()
    engine.dispose()
    assert not enabled and marker is not None
    again = client.get("/api/v1/schedules?source=django-celery-beat&status=disabled")
    assert {i["name"] for i in again.get_json()["items"]} == {"every-3s", "switched-off"}
    web.extensions["lookout.schedules"].close()


def test_a_beat_database_that_refuses_writes_is_a_503_saying_what_is_needed(
        mariadb_beat, sqlite_url, make_app):
    """A read-only role made disable a bare 500 (a Django trial)."""
    database = mariadb_beat.rsplit("/", 1)[1]
    user = f"ro_{uuid.uuid4().hex[:8]}"
    admin = create_engine(MARIADB)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'ro'"))
        conn.execute(text(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%'"))
    try:
        web = make_app(sqlite_url, broker_url="memory://", beat_database_url=(
            f"mysql+pymysql://{user}:ro@127.0.0.1:3306/{database}"))
        client = web.test_client()
        assert client.get("/api/v1/schedules").get_json()["items"]  # reading works
        csrf = csrf_from(client.get("/schedules").get_data(as_text=True))
        response = client.post("/api/v1/schedules/django-celery-beat/every-3s/disable",
                               headers={"X-CSRF-Token": csrf})
        assert response.status_code == 503, response.get_data(as_text=True)
        message = response.get_json()["error"]["message"]
        assert message.startswith("the django-celery-beat schedule database refused the "
                                  "change (OperationalError;")
        assert "needs UPDATE and INSERT" in message
        web.extensions["lookout.schedules"].close()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP USER '{user}'@'%'"))
        admin.dispose()


def test_an_unreachable_beat_database_is_reported(sqlite_url, make_app):
    web = make_app(sqlite_url, beat_database_url="postgresql+psycopg://postgres@127.0.0.1:"
                   "5432/no_such_database_here", broker_url="memory://")
    body = web.test_client().get("/api/v1/schedules").get_json()
    (source,) = body["sources"]
    assert source["name"] == "django-celery-beat" and "cannot read" in source["error"]
    assert "no_such_database_here" in source["error"] and body["items"] == []
    web.extensions["lookout.schedules"].close()
