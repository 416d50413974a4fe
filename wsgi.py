"""WSGI entry point in a checkout: `gunicorn -w 1 --threads 600 wsgi:app` (see README).

Installed from the wheel, use the package's own factory instead:
`gunicorn -w 1 --threads 600 'lookout.dashboard.wsgi:app_from_environment()'`.
"""
from lookout.dashboard.wsgi import app_from_environment

app = app_from_environment()
