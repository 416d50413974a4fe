"""Shared by the auth, control and audit tests: users, logins, a broadcast spy."""
from __future__ import annotations

import functools
import re
import time
from typing import Any

from werkzeug.security import generate_password_hash

from helpers.apps import build_app
from lookout.core.store.models_auth import User

PASSWORD = "correct horse battery"
USERS = {"ada": "admin", "otto": "operator", "vic": "viewer"}


class SpyBroadcaster:
    """Records every control message on its way to the real broadcaster."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[tuple[str, dict, Any]] = []

    def __call__(self, command, arguments, destination, timeout):
        self.calls.append((command, arguments, destination))
        return self.inner(command, arguments, destination, timeout)


def app_with_users(database_url: str, broker_url: str, **settings: Any):
    """An app (auth on unless told otherwise) with one user per role and a spy installed."""
    settings.setdefault("auth", True)
    app = build_app(database_url, broker_url=broker_url, secret_key="test-secret", **settings)
    # Rows written directly with one hash made per session: scrypt is slow on purpose.
    with app.extensions["lookout.engine"].begin() as conn:
        conn.execute(User.__table__.insert(), [
            {"username": name, "password_hash": _password_hash(), "role": role,
             "disabled": False, "created_at": time.time(), "session_epoch": 0}
            for name, role in USERS.items()])
    control = app.extensions["lookout.control"]
    control.broadcaster = SpyBroadcaster(control.broadcaster)
    return app


@functools.cache
def _password_hash() -> str:
    return generate_password_hash(PASSWORD)


def spy(app) -> SpyBroadcaster:
    return app.extensions["lookout.control"].broadcaster


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf[-_]token" (?:content|value)="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD) -> str:
    """Log in through the form like a browser; returns the session's CSRF token."""
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": token, "next": "/"})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return csrf_from(client.get("/").get_data(as_text=True))


def audit_records(app, **filters: str) -> list[dict]:
    return app.extensions["lookout.audit"].list(filters)["items"]
