"""Cross-site request defences and security headers, applied to every response.

State changes only ever happen on POST/PUT/PATCH/DELETE, and each such request must pass
two independent checks when it rides on a session cookie:

- same origin: a browser says where a request comes from (`Sec-Fetch-Site`, `Origin`);
  anything other than this very origin is refused, even with a valid token;
- a CSRF token: a random value kept in the signed session and repeated by the page in
  an `X-CSRF-Token` header (fetch) or a `csrf_token` form field; a cross-site page can
  make the browser send the cookie but cannot read the token.

Requests authenticated with `Authorization: Bearer` carry no ambient credential, so they
need no CSRF token, but the origin check still applies if a browser sent them. The
checks also run with `--no-auth`: a local dashboard is exactly what a malicious page
would target through the user's browser.
"""
from __future__ import annotations

import hmac
import json
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, current_app, request, session
from flask.sessions import SecureCookieSessionInterface

from lookout.dashboard.web.errors import ApiError

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


def csrf_token() -> str:
    """This session's CSRF token, created on first use (pages put it in a meta tag)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def host_name(host_header: str) -> str:
    """The name part of a Host header: 'a.example:80' -> 'a.example', '[::1]:80' -> '::1'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


# Probes answer whatever Host they are sent (a load balancer's or Kubernetes' health check
# names the pod's address): anonymous callers get only the verdict there, nothing a
# rebinding page could use.
ANY_HOST_PATHS = frozenset({"/readyz", "/healthz", "/healthcheck"})


class TrustedHostMiddleware:
    """WSGI: answer 400 to a Host this deployment does not answer to, before anything.

    Outermost, so it covers Socket.IO too (engine.io answers its handshake before Flask
    routes). DNS rebinding: a page on evil.example re-resolved to 127.0.0.1 is
    same-origin with itself, so Origin checks pass; only the Host header tells.
    """

    def __init__(self, wsgi_app, trusted: set[str] | None):
        self.wsgi_app = wsgi_app
        self.trusted = trusted

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if (self.trusted is not None and host_name(host) not in self.trusted
                and environ.get("PATH_INFO") not in ANY_HOST_PATHS):
            return json_error(start_response, "400 Bad Request", (
                f"host {host[:100]!r} is not allowed here (LOOKOUT_ALLOWED_HOSTS)"))
        path = environ.get("PATH_INFO", "")
        if len(path) + len(environ.get("QUERY_STRING", "")) > MAX_URL_LENGTH:
            return json_error(start_response, "414 URI Too Long", (
                f"the URL is longer than {MAX_URL_LENGTH} characters"))
        if path.startswith("/socket.io"):
            return self.wsgi_app(environ, _with_socket_headers(start_response))
        return self.wsgi_app(environ, start_response)


# No filter needs more; past this a URL is a mistake or an attack, answered in the API's
# JSON shape (the servers' own limits come later: Werkzeug 64 KB, gunicorn 4-8 KB).
MAX_URL_LENGTH = 8000


def json_error(start_response, status: str, message: str) -> list[bytes]:
    """An error answered before Flask, in the API's JSON shape, with the usual headers."""
    body = json.dumps({"error": {"status": int(status.split()[0]),
                                 "message": message}}).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), *BASIC_HEADERS])
    return [body]


# For answers Flask never sees: engine.io answers /socket.io/ itself, and the guard
# above answers errors before Flask.
BASIC_HEADERS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                 ("Referrer-Policy", "same-origin"), ("Cache-Control", "no-store"))


def _with_socket_headers(start_response):
    def start(status, headers, exc_info=None):
        present = {name.lower() for name, _ in headers}
        headers = list(headers) + [h for h in BASIC_HEADERS if h[0].lower() not in present]
        return start_response(status, headers, exc_info)
    return start


def guard_hosts(app: Flask) -> None:
    """Install the Host allow-list around the whole app (call after socketio.init_app).

    Behind LOOKOUT_TRUSTED_PROXIES reverse proxies, Werkzeug's ProxyFix goes outside it:
    the client's address, scheme and host come from the proxies' X-Forwarded-* headers,
    so the allow-list checks the public host, the audit trail records the real client and
    cookies are Secure when the client used HTTPS."""
    settings = app.config["LOOKOUT"]
    trusted = settings.trusted_hosts()
    app.wsgi_app = TrustedHostMiddleware(
        app.wsgi_app, None if trusted is None else {n.strip("[]").lower() for n in trusted})
    if settings.trusted_proxies > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops,
                                x_port=hops)


class SessionCookies(SecureCookieSessionInterface):
    """Session cookies marked Secure whenever the request came over HTTPS (directly or,
    with trusted proxies, as they report it), or always with LOOKOUT_SECURE_COOKIES."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def same_origin() -> bool:
    """False when the browser says the request comes from another site or origin."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == request.host_url.rstrip("/")
    return True


def check_cross_site(bearer: bool) -> None:
    """Refuse an unsafe request from another origin or without a matching CSRF token."""
    if request.method not in UNSAFE_METHODS:
        return
    if not same_origin():
        raise ApiError(403, "cross-site request refused")
    if bearer:
        return
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    expected = session.get("csrf") or ""
    if not expected and session.get("uid") is not None:
        # Signed in (a script that posted the login form), but no page was loaded, so no
        # CSRF token was ever handed out: "no session" was wrong (a hostile-input trial).
        raise ApiError(403, "missing CSRF token: load a page of this session and send its "
                            "token (X-CSRF-Token header), or use an API token")
    if not expected:
        # No session at all: a script (with --no-auth too, where a cross-site form would
        # otherwise control the workers). Say what a script sends (a trial got the
        # browser's advice, "reload the page").
        raise ApiError(403, "no session and no API token: a script sends Authorization: "
                            "Bearer <token> (lookout users token NAME --role operator); "
                            "a browser, the page's CSRF token (reload the page)")
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(403, "missing or invalid CSRF token (reload the page)")


def content_security_policy(settings) -> str:
    """Scripts only from this origin and the configured CDN origins; no inline scripts."""
    script = ["'self'"] + sorted({o for o in map(_origin, (settings.chartjs_url,
                                                             settings.socketio_url)) if o})
    return "; ".join([
        "default-src 'self'",
        f"script-src {' '.join(script)}",
        "style-src 'self'",
        "img-src 'self' data:",
        # 'self' covers ws:/wss: to this host in CSP 3 browsers; spelt out for older ones.
        f"connect-src 'self' ws://{request.host} wss://{request.host}",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _origin(url: str) -> str | None:
    parts = urlsplit(url or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None  # a same-origin path such as /vendor/chart.umd.js


def add_security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy",
                       content_security_policy(current_app.config["LOOKOUT"]))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")
    # Never answer a cross-origin read: there is no CORS allow-list to widen by accident.
    headers.pop("Access-Control-Allow-Origin", None)
    return response


def init_app(app: Flask) -> None:
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME="lookout_session",
                      SESSION_COOKIE_SECURE=app.config["LOOKOUT"].secure_cookies,
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=12))
    app.session_interface = SessionCookies()
    app.after_request(add_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
