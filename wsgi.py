"""WSGI entry point for gunicorn: `gunicorn -w 1 --threads 100 wsgi:app` (see README)."""
from collectors.config import Settings
from collectors.store.db import upgrade
from dashboard import create_app

settings = Settings.load()
upgrade(settings.database_url)
app = create_app(settings)
