"""Serving the dashboard: Werkzeug for local use, plus the in-process collector of `lookout run`.

Flask-SocketIO in threading mode (simple-websocket) needs no monkey-patching. Werkzeug's
server is fine on a loopback address, which is where `lookout web` and `lookout run`
listen by default; anything reachable from other hosts should go through gunicorn
(see dashboard/wsgi.py), so serve() refuses to expose
Werkzeug there rather than quietly passing allow_unsafe_werkzeug everywhere.

Neither server needs its store to start (`prepare_store`): restarted during a store
outage, the web answers 503s that say so until the store is back, then serves as usual.
"""
from __future__ import annotations

import functools
import ipaddress
import logging
import signal
import threading
import time
from contextlib import ExitStack

from lookout.core.config import Settings, redact_url

log = logging.getLogger("lookout.server")

# Threading mode wants one process with many threads. More processes means one
# `gunicorn -w 1` per port behind a load balancer with sticky sessions (nginx ip_hash),
# all given the same LOOKOUT_MESSAGE_QUEUE as the `lookout collect` feeding them.
GUNICORN_HINT = ("LOOKOUT_MESSAGE_QUEUE=redis://... gunicorn -w 1 --threads 600 "
                 "--limit-request-line 8190 -b {host}:{port} "
                 "'lookout.dashboard.wsgi:app_from_environment()', "
                 "with `lookout collect --message-queue redis://...` running the collector")


def json_error_handler():
    """Werkzeug's request handler, answering its own errors (a request line over 64 KB:
    414; a malformed one: 400) in the API's JSON shape instead of an HTML page."""
    from werkzeug.serving import WSGIRequestHandler

    from lookout.dashboard.web.security import json_error

    class JsonErrorRequestHandler(WSGIRequestHandler):
        def send_error(self, code, message=None, explain=None):
            self.close_connection = True
            reason = self.responses.get(code, ("Error",))[0]

            def start(status, headers):
                self.send_response(code, reason)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Connection", "close")
                self.end_headers()

            body = json_error(start, f"{code} {reason}", message or reason)
            if self.command != "HEAD":
                self.wfile.write(body[0])

    return JsonErrorRequestHandler


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def prepare_store(settings: Settings, retry_every: float = 5.0) -> None:
    """Bring the schema up to date, or start without the store.

    A web process that exits when its store is down cannot tell anyone so: a process
    manager restarts it in a loop, and the on-call sees connection refused where a page
    would have said "store unavailable". So it serves (/healthz "down", 503s elsewhere)
    and upgrades in a thread once the store answers; `lookout run`'s collector also
    upgrades before its first write, as `lookout collect` does.
    """
    from sqlalchemy.exc import OperationalError

    from lookout.core.store.db import error_line, upgrade

    try:
        upgrade(settings.database_url)
        return
    except OperationalError as exc:
        log.error("store %s unavailable at start (%s): serving anyway, with answers that say "
                  "so, until it is back", redact_url(settings.database_url),
                  error_line(exc, 200))
    settings.extra["store_upgrade"] = functools.partial(upgrade, settings.database_url)
    threading.Thread(target=_upgrade_when_back, name="lookout-store-upgrade", daemon=True,
                     args=(settings.extra["store_upgrade"], retry_every)).start()


def _upgrade_when_back(upgrade, retry_every: float) -> None:
    from sqlalchemy.exc import OperationalError

    while True:
        time.sleep(retry_every)
        try:
            upgrade()
        except OperationalError:
            continue  # still away: prepare_store said so once
        except Exception:  # noqa: BLE001 - a migration that fails will not pass by retrying
            log.exception("schema upgrade failed once the store answered")
            return
        log.info("store answers: schema up to date")
        return


def refuses_host(settings: Settings) -> bool:
    """True (and says why) when the built-in server must not listen on --host: checked
    before anything else is done, the schema upgrade included."""
    if is_loopback(settings.host):
        return False
    log.error("the built-in server only listens on loopback addresses; to serve on %s "
              "use: %s", settings.host,
              GUNICORN_HINT.format(host=settings.host, port=settings.port))
    return True


def serve(settings: Settings, with_collector: bool) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit status."""
    from lookout.dashboard import create_app
    from lookout.dashboard.live.namespace import socketio

    if refuses_host(settings):
        return 2
    app = create_app(settings)
    with ExitStack() as cleanup:
        cleanup.callback(app.extensions["lookout.engine"].dispose)
        collector = None
        if with_collector:
            collector = start_collector(settings, app, socketio, cleanup)
        elif not settings.message_queue:
            log.warning("no --message-queue: pages show history but get no live updates "
                        "from a collector running elsewhere")
        previous = signal.signal(signal.SIGTERM, _interrupt)
        cleanup.callback(signal.signal, signal.SIGTERM, previous)
        _quiet_request_log()
        log.info("Lookout on http://%s:%s (%s, live updates %s)", settings.host,
                 settings.port, "with collector" if with_collector else "web only",
                 "via " + redact_url(settings.message_queue) if settings.message_queue
                 else "in process")
        try:
            # Loopback only (checked above): the "unsafe" Werkzeug server is appropriate.
            socketio.run(app, host=settings.host, port=settings.port,
                         allow_unsafe_werkzeug=True, use_reloader=False, debug=False,
                         request_handler=json_error_handler())
        except KeyboardInterrupt:
            pass
        except OSError as exc:  # e.g. the port is taken
            log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
            return 1
        log.info("shutting down")
        if collector is not None:  # the server ends only on SIGINT/SIGTERM: an asked stop
            collector.stop(asked=True)
    return 0


def start_collector(settings: Settings, app, socketio, cleanup: ExitStack):
    """Collector in this process, pushing live updates through the app's own socketio.
    The cleanup stops it (a no-op after `stop(asked=True)` on a normal shutdown)."""
    from lookout.collectors.push import LivePublisher, attach
    from lookout.collectors.service import Collector

    publisher = LivePublisher(socketio)
    # Emits go through Redis with a message queue: only to the task rooms this process's
    # sockets watch, from the same record its sessions keep (None without one).
    publisher.watched = app.extensions["lookout.watched_tasks"]
    collector = Collector(settings, engine=app.extensions["lookout.engine"])
    attach(publisher, collector)
    publisher.start()
    cleanup.callback(publisher.stop)  # after the collector: its last batch gets pushed
    collector.start()
    cleanup.callback(collector.stop)
    return collector


def _interrupt(signum, frame) -> None:
    """SIGTERM ends the server like Ctrl-C does, so the collector flushes and stops."""
    raise KeyboardInterrupt


def _quiet_request_log() -> None:
    """One log line per HTTP request (and Socket.IO poll) drowns everything else; and
    Werkzeug's "production deployment" warning is wrong on loopback (it only means stdin
    is not a terminal, as under `make demo` or systemd)."""
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
