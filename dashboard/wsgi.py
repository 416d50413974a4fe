"""WSGI entry for gunicorn, configured by LOOKOUT_* variables (see README).

    gunicorn -w 1 --threads 600 -b 0.0.0.0:5555 'lookout.dashboard.wsgi:app_from_environment()'

A factory rather than a module-level `app`, so importing this module does no work.
"""
from __future__ import annotations

import os


def app_from_environment():
    """Settings from the environment, the Celery app of LOOKOUT_CELERY_APP, schema upgraded
    (or, with the store away, upgraded once it answers: the app starts and says so).

    Lookout's log lines (a message queue outage and its end, a store away) go to stderr
    with time and level, as under `lookout web`, unless logging was configured already."""
    from lookout.core.config import Settings
    from lookout.dashboard import create_app
    from lookout.dashboard.app_binding import bind_celery_app
    from lookout.dashboard.cli import configure_logging
    from lookout.dashboard.server import prepare_store

    configure_logging()  # gunicorn configures only its own loggers
    settings = Settings.load()
    bind_celery_app(settings, None, broker_explicit=bool(os.environ.get("LOOKOUT_BROKER_URL")))
    prepare_store(settings)
    return create_app(settings)
