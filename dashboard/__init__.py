"""The Lookout web application: history API, live pages, Socket.IO and controls."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from collectors.config import Settings

if TYPE_CHECKING:  # imported in create_app: `lookout collect` (dashboard.cli) never needs
    from flask import Flask  # Flask, whose import alone is about 16 MB of RSS

ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the web app; `settings` (or LOOKOUT_* env plus `overrides`) configures it."""
    from flask import Flask

    from collectors.store.db import make_engine
    from dashboard import api, audit, auth, control_api, fleet, pages, retries, schedules
    from dashboard.errors import register_error_handlers
    from dashboard.history import HistoryService
    from dashboard.live import socketio

    settings = settings or Settings.load(**overrides)
    app = Flask(__name__, template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"))
    app.config.update(
        SECRET_KEY=settings.secret_key or _random_secret(),
        LOOKOUT=settings,
        JSON_SORT_KEYS=False,
    )
    engine = make_engine(settings.database_url)
    app.extensions["lookout.engine"] = engine
    app.extensions["lookout.history"] = HistoryService(engine)
    register_error_handlers(app)
    auth.init_app(app)  # first: its guard must run before any other before_request
    audit.init_app(app)
    control_api.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.health_bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(fleet.bp)
    app.register_blueprint(retries.bp)
    app.register_blueprint(schedules.bp)
    socketio.init_app(app, message_queue=settings.message_queue or None,
                      async_mode="threading", cors_allowed_origins=[])
    return app


def _random_secret() -> str:
    import secrets

    return secrets.token_hex(32)
