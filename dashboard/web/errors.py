"""One JSON error shape for the API: {"error": {"status": N, "message": "..."}}; a browser
opening a page gets the same error as a page (templates/error.html)."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from lookout.core.celery_client import BrokerUnavailable
from lookout.core.config import redact_url
from lookout.core.store.db import STORE_UNAVAILABLE, error_line

log = logging.getLogger(__name__)
STORE_RETRY_AFTER = "5"  # seconds; a store outage is usually a restart or failover


PAGE_TITLES = {401: "Login required", 403: "Not allowed", 404: "Not found"}


class ApiError(Exception):
    """Raised by views and services to return an error with a status code: JSON, or a page
    for a browser opening a page. `needs_role`: the least role that would have been let in
    (web/roles.py), which the page explains."""

    def __init__(self, status: int, message: str, parameter: str | None = None,
                 needs_role: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter
        self.needs_role = needs_role


def error_response(status: int, message: str, parameter: str | None = None):
    body = {"error": {"status": status, "message": message}}
    if parameter is not None:  # "" too: a query string's nameless `?=1`
        body["error"]["parameter"] = parameter
    response = jsonify(body)
    response.status_code = status
    return response


class InvalidField(ValueError):
    """A value refused by a service the CLI and the API share (accounts, roles), naming
    its field: the API answers it as a 400 with that `parameter`, the CLI prints it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def bad_parameter(parameter: str, message: str) -> ApiError:
    return ApiError(400, f"{parameter or '(a parameter without a name)'}: {message}",
                    parameter)


def broker_down(broker_url: str, exc: Exception) -> ApiError:
    """The 503 of a broker that did not answer. A BrokerUnavailable already names the
    broker; kombu's own errors (a queue depth read) get its redacted URL."""
    if isinstance(exc, BrokerUnavailable):
        return ApiError(503, str(exc))
    return ApiError(503, f"broker {redact_url(broker_url)} unreachable: {exc}")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        if _wants_page():
            return _error_page(exc)
        return error_response(exc.status, exc.message, exc.parameter)

    @app.errorhandler(BrokerUnavailable)
    def _broker_down(exc: BrokerUnavailable):
        # Anything that sends to the broker (run now, retry, Flower's apply) fails fast.
        return error_response(503, str(exc))

    def _store_down(exc: Exception):
        # The database refused, timed out or was locked past the busy timeout: a 503 that
        # says so (scripts retry, an SRE looks at the store), not "error in the application".
        # The driver's text names the database host and name: the log gets it, the
        # answer (perhaps to an anonymous visitor, before any login check) does not.
        log.warning("store unavailable for %s %s: %s", request.method, request.path,
                    error_line(exc))
        message = ("store unavailable: the database did not answer "
                   f"({type(getattr(exc, 'orig', None) or exc).__name__}; details in the "
                   "server log)")
        if _wants_json():
            response = error_response(503, message)
        elif request.path == "/metrics":
            response = app.response_class(message + "\n", 503, mimetype="text/plain")
        else:  # a page: it tries again by itself, so an open tab recovers with the store
            # The layout reads nothing from the store (the caller is anonymous here if the
            # store failed while the guard asked who it is).
            response = app.response_class(render_template(
                "error.html", page="error", title="Store unavailable", message=message,
                retry_after=STORE_RETRY_AFTER), 503, mimetype="text/html")
        response.headers["Retry-After"] = STORE_RETRY_AFTER
        return response

    for error in STORE_UNAVAILABLE:
        app.register_error_handler(error, _store_down)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if _wants_json():
            return error_response(exc.code or 500, exc.description or exc.name)
        return exc


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def _wants_page() -> bool:
    """A browser opening a page: a GET outside the API whose Accept prefers HTML. Scripts
    (curl's */*, no Accept at all) and scrapers keep the JSON error they always had."""
    if request.method not in ("GET", "HEAD") or _wants_json():
        return False
    return request.accept_mimetypes.best_match(("application/json", "text/html")) == "text/html"


def _error_page(exc: ApiError):
    """The error as a page of the layout, with its status: a viewer opening /controls saw
    `{"error": ...}` as the page. Jinja escapes the message (it may quote a name)."""
    title = PAGE_TITLES.get(exc.status) or HTTP_STATUS_CODES.get(exc.status, "Error")
    return render_template("error.html", page="error", title=title, message=exc.message,
                           needs_role=exc.needs_role), exc.status
