"""WSGI entry for gunicorn, configured by LOOKOUT_* variables (see README).

    gunicorn -w 1 --threads 600 -b 0.0.0.0:5555 'lookout.dashboard.wsgi:app_from_environment()'

A factory rather than a module-level `app`, so importing this module does no work.
"""
from __future__ import annotations

import logging
import os


def app_from_environment():
    """Settings from the environment, the Celery app of LOOKOUT_CELERY_APP, schema upgraded.

    Lookout's log lines (a message queue outage and its end, a store away) go to stderr
    with time and level, as under `lookout web`, unless logging was configured already."""
    from sqlalchemy.exc import OperationalError

    from lookout.core.config import Settings, redact_url
    from lookout.core.store.db import error_line, upgrade
    from lookout.dashboard import create_app
    from lookout.dashboard.cli import bind_celery_app, configure_logging

    configure_logging()  # gunicorn configures only its own loggers
    settings = Settings.load()
    bind_celery_app(settings, None, broker_explicit=bool(os.environ.get("LOOKOUT_BROKER_URL")))
    try:
        upgrade(settings.database_url)
        return create_app(settings)
    except OperationalError as exc:  # one line to read above gunicorn's traceback
        logging.getLogger("lookout.wsgi").error(
            "store %s unavailable at start: %s; the web process needs it (a process "
            "manager restarting gunicorn is enough)", redact_url(settings.database_url),
            error_line(exc))
        raise
