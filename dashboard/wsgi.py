"""WSGI entry for gunicorn, configured by LOOKOUT_* variables (see README).

    gunicorn -w 1 --threads 600 -b 0.0.0.0:5555 'lookout.dashboard.wsgi:app_from_environment()'

A factory rather than a module-level `app`, so importing this module does no work.
"""
from __future__ import annotations

import os


def app_from_environment():
    """Settings from the environment, the Celery app of LOOKOUT_CELERY_APP, schema upgraded."""
    from lookout.core.config import Settings
    from lookout.core.store.db import upgrade
    from lookout.dashboard import create_app
    from lookout.dashboard.cli import bind_celery_app

    settings = Settings.load()
    bind_celery_app(settings, None, broker_explicit=bool(os.environ.get("LOOKOUT_BROKER_URL")))
    upgrade(settings.database_url)
    return create_app(settings)
