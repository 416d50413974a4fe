"""django-celery-beat, for real: a Django project on SQLite and on PostgreSQL, its real
beat with the DatabaseScheduler, a real worker, and `lookout run -A djproj` with no other
setting. Lookout must list every database entry, match runs to the right entry, flag a
stopped beat and a failing task, and run, disable and enable entries as the admin does.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from helpers.browser import free_port, get_json
from helpers.django_project import DATABASE_ENTRIES, DjangoProject, wait_json
from helpers.pg import create_database, drop_database
from helpers.support import VENV_BIN, wait_for

pytestmark = pytest.mark.slow


@dataclass
class Running:
    kind: str
    project: DjangoProject
    base: str
    beat_db: str  # SQLAlchemy URL of the Django database
    operator: str
    viewer: str

    def call(self, method: str, path: str, token: str | None = None,
             body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token or self.operator}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def schedules(self, query: str = "") -> dict:
        status, body = self.call("GET", "/api/v1/schedules" + query)
        assert status == 200, body
        return body

    def items(self) -> dict[str, dict]:
        return {i["name"]: i for i in self.schedules()["items"]}

    def entry(self, name: str) -> dict:
        status, body = self.call("GET", f"/api/v1/schedules/django-celery-beat/{name}")
        assert status == 200, body
        return body

    def table(self, name: str) -> dict:
        engine = create_engine(self.beat_db)
        try:
            with engine.connect() as conn:
                row = conn.execute(text(
                    "SELECT enabled, last_run_at, total_run_count FROM "
                    "django_celery_beat_periodictask WHERE name = :n"), {"n": name}).one()
        finally:
            engine.dispose()
        last = row.last_run_at
        if isinstance(last, str):  # SQLite: naive UTC text
            last = datetime.fromisoformat(last)
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=timezone.utc)
        return {"enabled": bool(row.enabled), "total_run_count": row.total_run_count,
                "last_run_at": last.timestamp() if last else None}


def _database(kind: str, root: Path) -> tuple[dict, str, str | None]:
    if kind == "sqlite":
        path = root / "beat.sqlite3"
        return ({"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)},
                f"sqlite:///{path}", None)
    name, url = create_database("djbeat")
    return ({"ENGINE": "django.db.backends.postgresql", "NAME": name, "USER": "postgres",
             "HOST": "127.0.0.1", "PORT": "5432"}, url, name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def running(request, tmp_path_factory, private_redis) -> Running:
    kind = request.param
    root = tmp_path_factory.mktemp(f"django-{kind}")
    database, beat_db, pg_name = _database(kind, root)
    project = DjangoProject(root, database, f"{private_redis}/{1 if kind == 'sqlite' else 2}")
    try:
        project.setup()
        store = f"sqlite:///{root / 'lookout.db'}"
        lookout = str(VENV_BIN / "lookout")
        project.run("-c", "from lookout.dashboard.cli import main; main()", "db", "upgrade",
                    "--database", store)
        tokens = {role: project.run(
            "-c", "from lookout.dashboard.cli import main; main()", "users", "token",
            f"{role}-script", "--role", role, "--database", store).strip()
            for role in ("operator", "viewer")}
        port = free_port()
        project.worker()
        project.beat()
        project.start("lookout", [lookout, "run", "-A", "djproj", "--database", store,
                                  "--port", str(port)])
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_json(base + "/healthz", 2)[0] == 200, 60, 0.3,
                 "lookout to serve")
        yield Running(kind, project, base, beat_db, tokens["operator"], tokens["viewer"])
    finally:
        project.stop_all()
        if pg_name:
            drop_database(pg_name)


def test_every_database_entry_is_listed_with_kind_zone_and_next_run(running):
    body = running.schedules()
    sources = {s["name"]: s for s in body["sources"]}
    assert "djproj.settings" in sources["django-celery-beat"]["detail"]
    assert sources["django-celery-beat"]["error"] is None and body["warnings"] == []
    assert body["scheduler"] == "django_celery_beat.schedulers:DatabaseScheduler"
    items = {i["name"]: i for i in body["items"]}
    for name in DATABASE_ENTRIES:
        assert items[name]["source"] == "django-celery-beat", name
    assert items["every-3s"]["schedule"]["description"] == "every 3 seconds"
    assert items["every-3s"]["description"] == "fast ticker"
    shanghai = items["shanghai-minutely"]["schedule"]
    assert shanghai == {"kind": "crontab", "description": "every minute (Asia/Shanghai)",
                        "cron": "* * * * *", "timezone": "Asia/Shanghai"}
    daily = items["daily-0800"]
    assert daily["schedule"]["description"] == "at 08:00 every day (Europe/Berlin)"
    due = datetime.fromtimestamp(daily["next_run_at"], ZoneInfo("Europe/Berlin"))
    assert (due.hour, due.minute) == (8, 0) and 0 < daily["next_run_at"] - time.time() <= 86400
    assert daily["next_run_local"].endswith(" (Europe/Berlin)") and " 08:00:00 " in \
        daily["next_run_local"]
    assert daily["options"]["queue"] == "celery"
    off = items["switched-off"]
    assert off["enabled"] is False and off["health"]["status"] == "disabled"
    once = items["once-later"]
    assert once["schedule"]["kind"] == "clocked" and once["one_off"] is True
    assert 86400 < once["next_run_at"] - time.time() <= 2 * 86400
    assert items["always-failing"]["schedule"]["seconds"] == 5
    # beat copied CELERY_BEAT_SCHEDULE (and its own cleanup entry) into the database
    wait_for(lambda: running.items()["from-settings"]["source"] == "django-celery-beat", 30,
             0.5, "beat to store the settings entry")


def test_runs_and_beats_record_belong_to_the_right_entry(running):
    items = wait_json(running.items, lambda i: i["every-3s"]["last_run"]
                      and i["every-8s"]["last_run"], 60, "both entries to run")
    fast, slow = items["every-3s"], items["every-8s"]
    assert fast["shares_runs_with"] == [] and slow["shares_runs_with"] == []
    _, fast_task = running.call("GET", f"/api/v1/tasks/{fast['last_run']['uuid']}")
    _, slow_task = running.call("GET", f"/api/v1/tasks/{slow['last_run']['uuid']}")
    assert fast_task["args"] == "['fast']" and slow_task["args"] == "['slow']"
    assert slow_task["kwargs"] == "{'full': True}"
    detail = running.entry("every-3s")
    assert detail["runs"] and {r["uuid"] for r in detail["runs"]}.isdisjoint(
        {r["uuid"] for r in running.entry("every-8s")["runs"]})
    # beat's own record, as the table holds it (read while it is not changing)
    def matches():
        before = running.table("every-8s")
        shown = running.entry("every-8s")
        after = running.table("every-8s")
        return before == after and before["last_run_at"] is not None and \
            shown["beat_last_run_at"] == pytest.approx(before["last_run_at"], abs=0.001) and \
            shown["total_run_count"] == before["total_run_count"]
    wait_for(matches, 30, 0.5, "beat_last_run_at to match the table")


def test_a_failing_task_turns_its_entry_failing(running):
    failing = wait_json(lambda: running.entry("always-failing"),
                        lambda e: e["health"]["status"] == "failing", 30, "failing")
    assert failing["runs"][0]["state"] == "FAILURE"
    assert "made to fail" in failing["runs"][0]["exception"]


def test_stopped_beat_turns_entries_missed_and_they_recover(running):
    if running.kind != "sqlite":
        pytest.skip("beat is stopped once, on the SQLite project")
    for name in ("every-3s", "every-8s"):
        status, _ = running.call("PUT", f"/api/v1/schedules/django-celery-beat/{name}"
                                 "/thresholds", body={"grace": 4})
        assert status == 200
    wait_json(running.items, lambda i: i["every-8s"]["last_run"], 60, "a slow run")
    (beat,) = [p for p in running.project.processes if p.name == "beat"]
    running.project.stop(beat)
    stopped = time.time()
    items = wait_json(running.items, lambda i: i["every-3s"]["health"]["status"] == "missed"
                      and i["every-8s"]["health"]["status"] == "missed", 45, "missed")
    for name in ("every-3s", "every-8s"):
        verdict = items[name]["health"]
        assert verdict["due_at"] + 4 < time.time() and "grace 4 s" in verdict["reason"]
    assert time.time() - stopped < 8 + 4 + 15  # within its period, grace and polling
    assert items["switched-off"]["health"]["status"] == "disabled"  # not missed: disabled
    running.project.beat()
    wait_json(running.items, lambda i: i["every-3s"]["health"]["status"] in ("ok", "late"),
              30, "every-3s to recover")


def test_controls_run_disable_enable_with_audit_and_roles(running):
    if running.kind != "postgresql":
        pytest.skip("controls are exercised once, on the PostgreSQL project")
    path = "/api/v1/schedules/django-celery-beat/"
    # a viewer is refused and nothing is sent or changed
    assert running.call("POST", path + "daily-0800/run", running.viewer)[0] == 403
    assert running.call("POST", path + "every-3s/disable", running.viewer)[0] == 403
    assert running.table("every-3s")["enabled"] is True
    assert running.entry("daily-0800")["runs"] == []
    # run now sends exactly one task with the entry's arguments
    status, sent = running.call("POST", path + "daily-0800/run")
    assert status == 200 and sent["task"] == "djproj.report"
    runs = wait_json(lambda: running.entry("daily-0800")["runs"],
                     lambda r: r and r[0]["state"] == "SUCCESS", 30, "the run")
    assert [r["uuid"] for r in runs] == [sent["task_id"]]
    _, task = running.call("GET", f"/api/v1/tasks/{sent['task_id']}")
    assert task["args"] == "['daily']" and task["queue"] in ("celery", None)
    # disable: the table says so and beat stops sending it
    status, body = running.call("POST", path + "every-3s/disable")
    assert status == 200 and body["enabled"] is False and body["was_enabled"] is True
    assert running.table("every-3s") == {**running.table("every-3s"), "enabled": False,
                                         "last_run_at": None}
    assert running.entry("every-3s")["health"]["status"] == "disabled"

    def newest() -> str | None:
        found = running.entry("every-3s")["runs"]
        return found[0]["uuid"] if found else None
    time.sleep(7)  # beat reloads its schedule within 5 s; a send already made may land
    quiet = newest()
    time.sleep(7)  # two periods and more of an every-3s entry: an absence needs time
    assert newest() == quiet, "beat kept sending a disabled entry"
    # enable: beat sends it again
    assert running.call("POST", path + "every-3s/enable")[0] == 200
    wait_for(lambda: newest() != quiet, 30, 0.5, "runs after enabling")
    # one audit record per action, the viewer's refusals included
    _, audit = running.call("GET", "/api/v1/audit?action=schedule.run")
    outcomes = sorted(r["outcome"] for r in audit["items"])
    assert outcomes == ["ok", "refused"]
    _, toggles = running.call("GET", "/api/v1/audit?target=django-celery-beat/every-3s")
    assert sorted((r["action"], r["outcome"]) for r in toggles["items"]) == [
        ("schedule.disable", "ok"), ("schedule.disable", "refused"), ("schedule.enable", "ok")]
