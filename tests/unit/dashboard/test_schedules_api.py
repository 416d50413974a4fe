"""/api/v1/schedules over the app's beat_schedule: exact runs, health, filters, bad input,
thresholds, and the live watcher. (django-celery-beat and RedBeat: tests/integration.)"""
from __future__ import annotations

import time

import pytest
from celery import Celery
from celery.schedules import crontab

from helpers.control import csrf_from
from helpers.factories import add_task
from lookout.dashboard.schedules.watch import ScheduleWatcher


def beat_app(scheduler: str | None = None, **entries) -> Celery:
    app = Celery("beat-test", broker="memory://", set_as_current=False)
    app.conf.beat_schedule = entries
    if scheduler:
        app.conf.beat_scheduler = scheduler
    return app


@pytest.fixture
def web(sqlite_url, make_app):
    def build(bound=None, **settings):
        """A web app; `bound` is a Celery app bound as -A binds it."""
        app = make_app(sqlite_url, broker_url=settings.pop("broker_url", "memory://"),
                       **settings)
        if bound is not None:
            app.config["LOOKOUT"].extra["celery_app"] = bound
        return app
    return build


def csrf_headers(client) -> dict[str, str]:
    return {"X-CSRF-Token": csrf_from(client.get("/schedules").get_data(as_text=True))}


def items(client, query: str = "") -> dict[str, dict]:
    response = client.get("/api/v1/schedules" + query)
    assert response.status_code == 200, response.get_json()
    return {i["name"]: i for i in response.get_json()["items"]}


def test_app_given_as_module_string(web):
    app = web(celery_app="helpers.sample_tasks")
    data = app.test_client().get("/api/v1/schedules").get_json()
    assert data["configured"] is True and data["app"] == "sample_tasks"
    (item,) = data["items"]
    assert item["name"] == "tick-every-5s" and item["task"] == "sample.add"
    assert item["args"] == "(1, 2)" and item["source"] == "app"
    assert item["schedule"] == {"kind": "interval", "seconds": 5.0,
                                "description": "every 5 seconds", "timezone": None}
    assert item["health"] == {"status": "ok", "reason": "no run seen yet",
                              "due_at": item["next_run_at"]}
    assert 0 < item["next_run_at"] - time.time() <= 6
    assert data["counts"]["ok"] == 1 and data["sources"][0]["name"] == "app"


def test_without_app_says_how_to_give_it(web):
    data = web().test_client().get("/api/v1/schedules").get_json()
    assert data["configured"] is False and data["items"] == []
    assert "-A" in data["message"] and "LOOKOUT_BEAT_DATABASE_URL" in data["message"]


def test_an_app_that_cannot_be_imported_is_reported(web):
    data = web(celery_app="no_such_module_here:app").test_client().get(
        "/api/v1/schedules").get_json()
    assert data["items"] == [] and "no_such_module_here" in data["error"]


def test_runs_are_matched_by_name_and_arguments(web):
    app = web(beat_app(
        fast={"task": "proj.report", "schedule": 10.0, "args": ["fast"]},
        slow={"task": "proj.report", "schedule": 60.0, "args": ("slow",),
              "kwargs": {"full": True}},
        twin={"task": "proj.report", "schedule": 30.0, "args": ("slow",),
              "kwargs": {"full": True}},
        idle={"task": "proj.report", "schedule": 10.0, "args": ["idle"]}))
    engine = app.extensions["lookout.engine"]
    now = time.time()
    fast = add_task(engine, name="proj.report", args="['fast']", kwargs="{}",
                    timestamp=now - 2, received_at=now - 2, state="SUCCESS")
    slow = add_task(engine, name="proj.report", args="('slow',)", kwargs="{'full': True}",
                    timestamp=now - 20, received_at=now - 20, state="FAILURE")
    add_task(engine, name="proj.report", args="['other']", kwargs="{}", timestamp=now - 1,
             received_at=now - 1, state="SUCCESS")  # a direct call: nobody's run
    found = items(app.test_client())
    assert found["fast"]["last_run"]["uuid"] == fast["uuid"]
    assert found["slow"]["last_run"]["uuid"] == slow["uuid"]
    assert found["slow"]["health"]["status"] == "failing"
    assert found["idle"]["last_run"] is None and found["idle"]["recent_states"] == []
    assert found["slow"]["shares_runs_with"] == ["app/twin"]
    assert found["fast"]["shares_runs_with"] == []
    detail = app.test_client().get("/api/v1/schedules/app/fast").get_json()
    assert [r["uuid"] for r in detail["runs"]] == [fast["uuid"]]


def test_a_scheduler_lookout_cannot_read_is_said(web):
    app = web(beat_app("myproj.schedulers:MongoScheduler",
                       tick={"task": "proj.tick", "schedule": 10.0}))
    data = app.test_client().get("/api/v1/schedules").get_json()
    assert any("myproj.schedulers:MongoScheduler" in w and "cannot read" in w
               for w in data["warnings"])
    assert [i["name"] for i in data["items"]] == ["tick"]


def test_filters_and_bad_parameters(web):
    app = web(beat_app(a={"task": "proj.a", "schedule": 10.0},
                       b={"task": "proj.b", "schedule": crontab(minute=0)},
                       broken={"task": "proj.c", "schedule": "every tuesday"}))
    client = app.test_client()
    assert set(items(client, "?task=proj.b")) == {"b"}
    assert set(items(client, "?q=BRO")) == {"broken"}
    assert set(items(client, "?status=unknown")) == {"broken"}
    assert set(items(client, "?source=app&status=ok,missed")) == {"a", "b"}
    for query, parameter in (("?status=fine", "status"), ("?source=mongo", "source"),
                             ("?satus=ok", "satus")):
        response = client.get("/api/v1/schedules" + query)
        assert response.status_code == 400 and \
            response.get_json()["error"]["parameter"] == parameter
    assert client.get("/api/v1/schedules/app/a?limit=-1").status_code == 400
    missing = client.get("/api/v1/schedules/app/nope")
    assert missing.status_code == 404 and "nope" in missing.get_json()["error"]["message"]


def test_thresholds_are_set_validated_and_reset(web):
    app = web(beat_app(a={"task": "proj.a", "schedule": 120.0}))
    client = app.test_client()
    headers = csrf_headers(client)
    path = "/api/v1/schedules/app/a/thresholds"
    for body, parameter in (({"grace": -1}, "grace"), ({"grace": True}, "grace"),
                            ({"failures": 1.5}, "failures"), ({"patience": 3}, "patience"),
                            ({"late_after": "soon"}, "late_after")):
        response = client.put(path, json=body, headers=headers)
        assert response.status_code == 400, body
        assert response.get_json()["error"]["parameter"] == parameter
    assert client.put(path, data="[]", headers={**headers, "Content-Type":
                      "application/json"}).status_code == 400
    response = client.put(path, json={"grace": 5, "failures": 3}, headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"grace": 5.0, "late_after": 12.0, "running_limit": 120.0,
                                   "failures": 3, "custom": ["failures", "grace"]}
    reset = client.put(path, json={"grace": None}, headers=headers).get_json()
    assert reset["grace"] == 60 and reset["custom"] == ["failures"]
    assert client.put("/api/v1/schedules/app/zzz/thresholds", json={"grace": 5},
                      headers=headers).status_code == 404


def test_controls_that_cannot_work_say_why(web):
    celery_app = beat_app(a={"task": "proj.a", "schedule": 10.0})
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens there
    client = web(celery_app, broker_url="redis://127.0.0.1:1/0").test_client()
    headers = csrf_headers(client)
    toggle = client.post("/api/v1/schedules/app/a/disable", headers=headers)
    assert toggle.status_code == 409 and "where they are defined" in \
        toggle.get_json()["error"]["message"]
    run = client.post("/api/v1/schedules/app/a/run", headers=headers)
    assert run.status_code == 503 and "unreachable" in run.get_json()["error"]["message"]


def test_watcher_emits_only_when_a_status_changes(web):
    now = [time.time()]
    app = web(beat_app(a={"task": "proj.a", "schedule": 10.0}), clock=lambda: now[0])
    sent = []
    watcher = ScheduleWatcher(app.extensions["lookout.schedules"], sent.append)
    with app.app_context():
        first = watcher.check()
        assert first["changed"] == {"app/a": "ok"} and first["counts"]["ok"] == 1
        assert watcher.check() is None
        now[0] += 120  # first seen, never run: due after 10 s, grace 30 s
        second = watcher.check()
    assert second["changed"] == {"app/a": "missed"} and sent == [first, second]


def test_the_assessment_is_reused_for_a_few_seconds(web, monkeypatch):
    """The page, the Overview card and the watcher each ask every few seconds; one
    history query per entry is spent once per SOURCE_TTL, and a change made here shows
    at once."""
    from lookout.dashboard.schedules import service as service_module

    now = [time.time()]
    app = web(beat_app(a={"task": "proj.a", "schedule": 10.0},
                       b={"task": "proj.b", "schedule": 10.0}), clock=lambda: now[0])
    queries = []
    real = service_module.entry_runs
    monkeypatch.setattr(service_module, "entry_runs",
                        lambda *args, **kw: queries.append(args[1]) or real(*args, **kw))
    client = app.test_client()
    assert items(client)["a"]["last_run"] is None and sorted(queries) == ["proj.a", "proj.b"]
    engine = app.extensions["lookout.engine"]
    run = add_task(engine, name="proj.a", args="()", kwargs="{}", timestamp=now[0],
                   received_at=now[0], state="SUCCESS")
    assert items(client)["a"]["last_run"] is None and len(queries) == 2  # reused
    now[0] += service_module.SOURCE_TTL
    assert items(client)["a"]["last_run"]["uuid"] == run["uuid"] and len(queries) == 4
    response = client.put("/api/v1/schedules/app/a/thresholds", json={"failures": 3},
                          headers=csrf_headers(client))
    assert response.status_code == 200, response.get_json()
    assert items(client)["a"]["thresholds"]["failures"] == 3


def test_django_databases_become_sqlalchemy_urls():
    from lookout.dashboard.schedules.sources.django_beat import django_url

    assert django_url({"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/db.sqlite3"}) \
        == "sqlite:////srv/db.sqlite3"
    assert django_url({"ENGINE": "django.db.backends.postgresql", "NAME": "app",
                       "USER": "u", "PASSWORD": "p@ss", "HOST": "db", "PORT": "5433",
                       "OPTIONS": {"sslmode": "require", "isolation_level": 2}}) == \
        "postgresql+psycopg://u:p%40ss@db:5433/app?sslmode=require"
    assert django_url({"ENGINE": "django.db.backends.mysql", "NAME": "app", "HOST": "",
                       "USER": "root"}) == "mysql+pymysql://root@/app"
    with pytest.raises(ValueError, match="oracle"):
        django_url({"ENGINE": "django.db.backends.oracle"})


def test_health_does_not_depend_on_how_many_runs_are_listed_and_successes_show_no_exception(
        web):
    """?limit=1 judged one run ("the last 1 run failed") where the list said 3; a run that
    succeeded after a retry showed the retry's exception beside SUCCESS (a trial)."""
    app = web(beat_app(a={"task": "proj.a", "schedule": 10.0}))
    engine = app.extensions["lookout.engine"]
    now = time.time()
    for i in range(3):
        add_task(engine, name="proj.a", args="()", kwargs="{}", timestamp=now - 30 + i * 10,
                 received_at=now - 30 + i * 10, state="FAILURE", exception="Boom()")
    client = app.test_client()
    listed = items(client)["a"]["health"]
    detail = client.get("/api/v1/schedules/app/a?limit=1").get_json()
    assert listed["reason"] == detail["health"]["reason"] == "the last 3 runs failed"
    assert len(detail["runs"]) == 1 and detail["runs"][0]["exception"] == "Boom()"
    add_task(engine, name="proj.a", args="()", kwargs="{}", timestamp=now - 1,
             received_at=now - 1, state="SUCCESS", exception="Flaky('upstream')")
    newest = client.get("/api/v1/schedules/app/a?limit=2").get_json()["runs"][0]
    assert newest["state"] == "SUCCESS" and newest["exception"] is None


def test_a_clocked_one_offs_runs_are_those_from_its_time_on(sqlite_url, make_app):
    """Calls of its task made earlier (by code, or by hand) showed as its runs: "Runs (5)"
    for a one-off beat sent once (a trial)."""
    from lookout.dashboard.schedules import timing
    from lookout.dashboard.schedules.runs import entry_runs
    from lookout.dashboard.schedules.service import _clocked_at
    from lookout.dashboard.schedules.sources import BeatEntry

    engine = make_app(sqlite_url).extensions["lookout.engine"]
    at = time.time() - 100
    early = [add_task(engine, name="proj.once", args="()", kwargs="{}", timestamp=at - 90 + i,
                      state="SUCCESS")["uuid"] for i in range(4)]
    sent = add_task(engine, name="proj.once", args="()", kwargs="{}", timestamp=at + 0.3,
                    state="SUCCESS")["uuid"]
    once = BeatEntry("django-celery-beat", "once", "proj.once", timing.Clocked(at),
                     one_off=True)
    runs = entry_runs(engine, "proj.once", (), {}, since=_clocked_at(once))
    assert [r["uuid"] for r in runs] == [sent]
    assert len(entry_runs(engine, "proj.once", (), {})) == 5 == len(early) + 1
    every = BeatEntry("app", "e", "proj.once", timing.Interval(10))
    assert _clocked_at(every) is None
