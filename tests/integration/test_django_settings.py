"""A Django project whose settings fail to load: `lookout -A` says why and stops.

Celery reads Django's settings through a proxy that takes an error in the settings module
for "no such setting", so the app had no broker, and Lookout ran on its own default,
reconnecting every second with an unrelated error (a Django trial). Real project, real
`lookout` command, from the project's folder as a user runs it.
"""
from __future__ import annotations

import os
import subprocess

from helpers.django_project import DjangoProject
from helpers.support import VENV_BIN


def lookout(project: DjangoProject, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **project.env}
    env.pop("DJANGO_SECRET_KEY", None)
    return subprocess.run([str(VENV_BIN / "lookout"), *args], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=60)


def test_settings_that_fail_to_load_stop_lookout_with_the_reason(tmp_path, redis_broker):
    project = DjangoProject(tmp_path / "proj", {"ENGINE": "django.db.backends.sqlite3",
                                                "NAME": str(tmp_path / "dj.db")}, redis_broker)
    settings = project.root / "djproj" / "settings.py"
    settings.write_text(settings.read_text().replace(
        'SECRET_KEY = "not-secret"', 'SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]'))
    result = lookout(project, "collect", "-A", "djproj", "--database",
                     f"sqlite:///{tmp_path / 'lookout.db'}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert error == ("Error: Celery app 'djproj' reads Django's settings, and "
                     "'djproj.settings' failed to load: KeyError: 'DJANGO_SECRET_KEY'")


def test_a_project_module_not_found_says_where_to_run_from(tmp_path, redis_broker):
    project = DjangoProject(tmp_path / "proj", {"ENGINE": "django.db.backends.sqlite3",
                                                "NAME": str(tmp_path / "dj.db")}, redis_broker)
    result = lookout(project, "collect", "-A", "no_such_project", "--database",
                     f"sqlite:///{tmp_path / 'lookout.db'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "run from the folder that holds your project's package" in result.stderr


def test_settings_needing_a_module_lookout_lacks_say_where_to_install(tmp_path, redis_broker):
    """Installed in a venv of its own, Lookout met `No module named 'django'` (here: a
    library the settings import) as a raw traceback."""
    project = DjangoProject(tmp_path / "proj", {"ENGINE": "django.db.backends.sqlite3",
                                                "NAME": str(tmp_path / "dj.db")}, redis_broker)
    settings = project.root / "djproj" / "settings.py"
    settings.write_text("import not_in_this_environment\n" + settings.read_text())
    result = lookout(project, "collect", "-A", "djproj", "--database",
                     f"sqlite:///{tmp_path / 'lookout.db'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "ModuleNotFoundError: No module named 'not_in_this_environment'" in error
    assert error.endswith("install Lookout into the environment your workers run in")
