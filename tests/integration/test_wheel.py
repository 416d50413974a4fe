"""The built wheel, installed as a user would, outside the checkout.

One module-wide install: build the wheel from this checkout, install it with its
dependencies into a fresh venv in a temporary folder, and run everything from folders
that know nothing of the checkout (no PYTHONPATH, another working directory). Checks:
the only new top-level import names are `lookout`'s; `lookout run` serves every page and
asset by itself with no request to any other host; a project with its own `dashboard`
package keeps its tasks; `lookout collect -A proj` consumes from the project's broker.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from helpers.browser import CHROMIUM, CHROMIUM_ARGS, free_port, get_json
from helpers.support import ROOT, Process, wait_for

pytestmark = pytest.mark.slow

PAGES = ("/", "/tasks", "/tasks/no-such-task", "/workers", "/workers/nobody@nowhere",
         "/queues", "/retries", "/schedules", "/controls", "/audit", "/admin", "/trouble",
         "/failures", "/alerts", "/schedules/app/x")
ISOLATED = {"PYTHONPATH": "", "LOOKOUT_BROKER_URL": "", "LOOKOUT_DATABASE_URL": "",
            "LOOKOUT_CELERY_APP": "", "LOOKOUT_MESSAGE_QUEUE": ""}


class Installed:
    """A fresh venv holding the wheel; `bin(name)` is one of its commands."""

    def __init__(self, root: Path, wheel: Path, new_names: set[str]):
        self.root, self.wheel, self.new_names = root, wheel, new_names

    def bin(self, name: str) -> str:
        return str(self.root / "venv" / "bin" / name)


def run(args: list, cwd: Path, timeout: float = 600) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=_environment())
    assert result.returncode == 0, f"{args[:4]} failed:\n{result.stdout[-3000:]}" \
                                   f"\n{result.stderr[-3000:]}"
    return result.stdout


def _environment() -> dict[str, str]:
    import os

    return {**{k: v for k, v in os.environ.items() if not k.startswith("LOOKOUT_")},
            "PYTHONPATH": ""}


def site_packages_names(python: str, cwd: Path) -> set[str]:
    code = ("import site, os; p = site.getsitepackages()[0]; "
            "print('\\n'.join(sorted(os.listdir(p))))")
    return set(run([python, "-c", code], cwd).split())


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel-install")
    assert ROOT not in root.parents  # outside the checkout
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist",
         ROOT], cwd=root)
    (wheel,) = (root / "dist").glob("lookout-*.whl")
    run([sys.executable, "-m", "venv", root / "venv"], cwd=root)
    python = str(root / "venv" / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", wheel], cwd=root)
    with_lookout = site_packages_names(python, root)
    run([python, "-m", "pip", "uninstall", "-q", "-y", "lookout"], cwd=root)
    without = site_packages_names(python, root)
    run([python, "-m", "pip", "install", "-q", "--no-deps", wheel], cwd=root)
    yield Installed(root, wheel, with_lookout - without)


def test_only_lookout_is_added_as_a_top_level_name(installed):
    """Nothing named dashboard or collectors lands in site-packages: only lookout."""
    assert installed.new_names, "the wheel installed nothing?"
    assert all(name.startswith("lookout") for name in installed.new_names), \
        installed.new_names
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
    assert {n.split("/")[0] for n in names} <= {"lookout", "lookout-0.1.0.dist-info"}
    for packaged in ("lookout/templates/base.html", "lookout/templates/auth/login.html",
                     "lookout/static/vendor/chart.umd.js",
                     "lookout/static/vendor/socket.io.min.js",
                     "lookout/static/js/common.js", "lookout/static/css/lookout.css",
                     "lookout/core/store/migrations/env.py",
                     "lookout/core/store/migrations/script.py.mako",
                     "lookout/core/store/migrations/versions/0001_initial_schema.py"):
        assert packaged in names, packaged
    # Nothing of the checkout's own: tests, demo, benchmarks.
    assert not [n for n in names if n.startswith(("lookout/tests", "tests/", "demo/"))]
    python = installed.bin("python")
    probe = ("import importlib.util as u, sys; import lookout.dashboard.celery_command; "
             "print(u.find_spec('dashboard'), u.find_spec('collectors'), "
             "sorted(m for m in sys.modules if m.split('.')[0] in "
             "('flask', 'sqlalchemy', 'kombu', 'redis', 'psycopg')))")
    assert run([python, "-c", probe], installed.root).split() == ["None", "None", "[]"]


def test_lookout_run_serves_every_page_and_asset_from_itself(installed, private_redis,
                                                             artifacts_dir):
    """--no-auth on a private Redis, from another folder: every page, script and style
    sheet answers 200 from Lookout itself, and the browser asks no other host."""
    from playwright.sync_api import sync_playwright

    work = installed.root / "run"
    work.mkdir()
    port = free_port()
    lookout = Process([installed.bin("lookout"), "run", "--no-auth", "--port", str(port),
                       "--broker", f"{private_redis}/1",
                       "--database", f"sqlite:///{work / 'lookout.db'}"],
                      work / "lookout.log", env=ISOLATED, cwd=work)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get_json(base + "/healthz", timeout=2)[0] == 200, 60,
                 interval=0.2, message="installed lookout healthy")
        requests, bad, errors = [], [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                 args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()
                page.on("request", lambda request: requests.append(request.url))
                page.on("response", lambda response: response.status >= 400
                        and bad.append((response.url, response.status)))
                page.on("pageerror", lambda error: errors.append(str(error)))
                for path in ("/login", *PAGES):
                    response = page.goto(base + path, wait_until="networkidle")
                    assert response.status == 200, (path, response.status)
                    if path == "/":
                        page.wait_for_selector("#connection[data-state='live']")
                        page.screenshot(path=str(artifacts_dir / "overview.png"),
                                        full_page=True)
            finally:
                browser.close()
    finally:
        code = lookout.stop()
    hosts = {urlsplit(url).netloc for url in requests if not url.startswith("data:")}
    assert hosts == {f"127.0.0.1:{port}"}, hosts
    # The pages of an unknown task and worker ask the API, which rightly answers 404.
    assert [url for url, status in bad if "/api/v1/" not in url] == [], bad
    assert not errors, errors
    assets = {urlsplit(url).path for url in requests}
    for asset in ("/static/vendor/chart.umd.js", "/static/vendor/socket.io.min.js",
                  "/static/js/common.js", "/static/css/lookout.css"):
        assert asset in assets, asset
    assert code == 0, lookout.output()[-3000:]


@pytest.fixture(scope="module")
def project(installed, private_redis) -> Path:
    """A small Celery project whose own package is called `dashboard`, on a private broker."""
    folder = installed.root / "project"
    (folder / "proj").mkdir(parents=True)
    (folder / "dashboard").mkdir()
    (folder / "proj" / "__init__.py").write_text("from .celery import app\n")
    (folder / "proj" / "celery.py").write_text(textwrap.dedent(f"""
        from celery import Celery

        app = Celery("proj", broker="{private_redis}/3", include=["dashboard.tasks"])
        app.conf.update(task_send_sent_event=True, worker_hijack_root_logger=False,
                        broker_connection_retry_on_startup=True)
    """))
    (folder / "dashboard" / "__init__.py").write_text("")
    (folder / "dashboard" / "tasks.py").write_text(textwrap.dedent("""
        from proj.celery import app


        @app.task(name="dashboard.tasks.weekly_report")
        def weekly_report(week):
            return f"report for week {week}"
    """))
    return folder


def test_a_project_with_its_own_dashboard_package_keeps_its_tasks(installed, project):
    worker = Process([installed.bin("celery"), "-A", "proj", "worker", "-l", "INFO",
                      "-n", "own-dashboard@test", "--without-gossip", "--without-mingle",
                      "-c", "1"], project / "worker.log", env=ISOLATED, cwd=project)
    try:
        worker.wait_output("ready.", timeout=60)
        output = worker.output()
    finally:
        worker.stop()
    assert ". dashboard.tasks.weekly_report" in output, output[-3000:]
    # The plugin is there too, without shadowing anything.
    assert "collect" in run([installed.bin("celery"), "-A", "proj", "lookout", "--help"],
                            project)


def test_lookout_collect_with_dash_a_consumes_from_the_apps_broker(installed, project):
    """No --broker, no LOOKOUT_BROKER_URL: the events come from proj's broker (db 3)."""
    database = project / "collected.db"
    worker = Process([installed.bin("celery"), "-A", "proj", "worker", "-E", "-l", "INFO",
                      "-n", "collect-a@test", "--without-gossip", "--without-mingle",
                      "-c", "1"], project / "worker-e.log", env=ISOLATED, cwd=project)
    collector = Process([installed.bin("lookout"), "collect", "-A", "proj",
                         "--database", f"sqlite:///{database}"], project / "collect.log",
                        env=ISOLATED, cwd=project)
    try:
        worker.wait_output("ready.", timeout=60)
        collector.wait_output("connected to redis://127.0.0.1", timeout=60)
        sender = ("from dashboard.tasks import weekly_report; "
                  "print(weekly_report.delay(48).id)")
        wait_for(lambda: _worker_heard(database), 30, message="worker heartbeat stored")
        task_id = run([installed.bin("python"), "-c", sender], project).strip()

        def stored_state():
            with sqlite3.connect(database) as conn:
                row = conn.execute("SELECT state, name, args FROM tasks WHERE uuid = ?",
                                   (task_id,)).fetchone()
            return row if row and row[0] == "SUCCESS" else None
        state, name, args = wait_for(stored_state, 30, message="task stored as SUCCESS")
    finally:
        collector_code, _ = collector.stop(), worker.stop()
    assert (name, args) == ("dashboard.tasks.weekly_report", "(48,)")
    log = collector.output()
    assert "/3" in log.split("connected to ", 1)[1].splitlines()[0], log[-2000:]
    assert "Celery app 'proj'" in log
    assert collector_code == 0, log[-3000:]


def _worker_heard(database: Path) -> bool:
    try:
        with sqlite3.connect(database) as conn:
            return conn.execute("SELECT count(*) FROM workers WHERE hostname = ?",
                                ("collect-a@test",)).fetchone()[0] > 0
    except sqlite3.OperationalError:  # the schema is not there yet
        return False
