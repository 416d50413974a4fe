"""The Schedules page and /api/v1/schedules."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request

from lookout.dashboard.schedules.service import entries, load_celery_app
from lookout.dashboard.web.params import reject_unknown

bp = Blueprint("schedules", __name__)

HOW_TO = ("Start Lookout with your Celery app to see its beat schedule: "
          "celery -A proj lookout run, or lookout run -A proj "
          "(or set LOOKOUT_CELERY_APP=proj).")


@bp.get("/schedules")
def schedules_page():
    return render_template("schedules/schedules.html", page="schedules", how_to=HOW_TO)


@bp.get("/api/v1/schedules")
def list_schedules():
    reject_unknown(request.args, frozenset())
    settings = current_app.config["LOOKOUT"]
    try:
        # Imported once per web app: find_app touches sys.path, not something to redo
        # on every request thread.
        celery_app = current_app.extensions.get("lookout.celery_app")
        if celery_app is None:
            celery_app = load_celery_app(settings)
            current_app.extensions["lookout.celery_app"] = celery_app
    except Exception as exc:  # noqa: BLE001 - the user's module: any import error
        return jsonify(configured=True, app=settings.celery_app, items=[],
                       error=f"cannot load Celery app {settings.celery_app!r}: {exc}")
    if celery_app is None:
        return jsonify(configured=False, app=None, items=[], message=HOW_TO)
    return jsonify(configured=True, app=celery_app.main, items=entries(
        celery_app, current_app.extensions["lookout.engine"]))
