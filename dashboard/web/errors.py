"""One JSON error shape for the API: {"error": {"status": N, "message": "..."}}."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from lookout.core.celery_client import BrokerUnavailable
from lookout.core.config import redact_url

log = logging.getLogger(__name__)
STORE_RETRY_AFTER = "5"  # seconds; a store outage is usually a restart or failover


class ApiError(Exception):
    """Raised by views and services to return a JSON error with a status code."""

    def __init__(self, status: int, message: str, parameter: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter


def error_response(status: int, message: str, parameter: str | None = None):
    body = {"error": {"status": status, "message": message}}
    if parameter:
        body["error"]["parameter"] = parameter
    response = jsonify(body)
    response.status_code = status
    return response


def bad_parameter(parameter: str, message: str) -> ApiError:
    return ApiError(400, f"{parameter}: {message}", parameter)


def broker_down(broker_url: str, exc: Exception) -> ApiError:
    """The 503 of a broker that did not answer. A BrokerUnavailable already names the
    broker; kombu's own errors (a queue depth read) get its redacted URL."""
    if isinstance(exc, BrokerUnavailable):
        return ApiError(503, str(exc))
    return ApiError(503, f"broker {redact_url(broker_url)} unreachable: {exc}")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.parameter)

    @app.errorhandler(BrokerUnavailable)
    def _broker_down(exc: BrokerUnavailable):
        # Anything that sends to the broker (run now, retry, Flower's apply) fails fast.
        return error_response(503, str(exc))

    @app.errorhandler(OperationalError)
    @app.errorhandler(DisconnectionError)
    @app.errorhandler(PoolTimeout)
    def _store_down(exc: Exception):
        # The database refused, timed out or was locked past the busy timeout: a 503 that
        # says so (scripts retry, an SRE looks at the store), not "error in the application".
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
        log.warning("store unavailable for %s %s: %s", request.method, request.path, detail)
        message = f"store unavailable: {detail}"
        if _wants_json():
            response = error_response(503, message)
        else:
            response = app.response_class(message + "\n", 503, mimetype="text/plain")
        response.headers["Retry-After"] = STORE_RETRY_AFTER
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if _wants_json():
            return error_response(exc.code or 500, exc.description or exc.name)
        return exc


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"
