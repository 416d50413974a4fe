"""Binding the user's Celery app (`-A proj`, LOOKOUT_CELERY_APP) to Lookout's settings:
its broker and how to reach it, its schedules, its result backend.

The app is the user's code, and so is its configuration (a Django project's settings
module, most often): every way that can fail becomes one line that says what failed and
what to do, never a traceback, and never a silent fall-back to Lookout's own defaults.
"""
from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from lookout.core.config import Settings, redact_url

log = logging.getLogger("lookout")


def bind_celery_app(settings: Settings, celery_app: Any, broker_explicit: bool) -> None:
    """Load the app named by -A / LOOKOUT_CELERY_APP (if `celery` did not) and bind it."""
    if celery_app is None and settings.celery_app:
        from lookout.core.celery_client import load_celery_app

        try:
            celery_app = load_celery_app(settings.celery_app)
        except Exception as exc:  # noqa: BLE001 - the user's module: any import error
            raise ValueError(f"cannot load Celery app {settings.celery_app!r}: "
                             f"{type(exc).__name__}: {exc}"
                             f"{_load_hint(settings.celery_app, exc)}") from None
    if celery_app is None:
        return
    try:
        check_app_settings(celery_app)
        settings.use_celery_app(celery_app, broker_explicit)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's configuration: anything at all
        raise ValueError(f"cannot read Celery app {celery_app.main!r}'s configuration: "
                         f"{type(exc).__name__}: {exc}{_environment_hint(exc)}") from None
    if broker_explicit:
        source = " (--broker / LOOKOUT_BROKER_URL wins over the app's)"
    elif not celery_app.conf.broker_url:
        source = " (the app sets no broker_url: Lookout's default; set --broker if wrong)"
    else:
        source = ""
    log.info("Celery app %r: broker %s%s", celery_app.main, redact_url(settings.broker_url),
             source)


def check_app_settings(celery_app: Any) -> None:
    """Load a Django project's settings module the way Django would, and say why it fails.

    Celery reads `django.conf:settings` through a proxy that takes any error while the
    settings module loads (a `KeyError` for an unset environment variable, the common
    `os.environ["SECRET_KEY"]`) for "no such setting": the app then had no broker, and
    Lookout ran on its own default, reconnecting every second with an unrelated error (a
    Django trial). Nothing to do for an app configured otherwise.
    """
    module = os.environ.get("DJANGO_SETTINGS_MODULE")
    source = getattr(celery_app, "_config_source", None)
    if not module or "django" not in str(source or ""):
        return
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's settings module
        raise ValueError(f"Celery app {celery_app.main!r} reads Django's settings, and "
                         f"{module!r} failed to load: {type(exc).__name__}: {exc}"
                         f"{_environment_hint(exc)}") from None


def _load_hint(spec: str, exc: Exception) -> str:
    """What to do when `-A spec` does not import: another module missing means Lookout
    runs outside the project's environment; the project itself missing (or no app in
    it), the wrong folder."""
    if not isinstance(exc, (ImportError, AttributeError)):
        return ""
    missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    if missing and missing.split(".")[0] != spec.split(":")[0].split(".")[0]:
        return _environment_hint(exc)
    return (" (-A is read from the current directory, as `celery -A` reads it: run from "
            "the folder that holds your project's package)")


def _environment_hint(exc: Exception) -> str:
    """A missing module: Lookout runs outside the project's environment (a trial
    installed it in a venv of its own and met a raw traceback)."""
    if isinstance(exc, ModuleNotFoundError):
        return ("; -A imports your project, its settings and what they import: install "
                "Lookout into the environment your workers run in")
    return ""
