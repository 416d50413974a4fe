"""The Lookout web application: `create_app` builds it and shows its whole surface.

Every blueprint is registered here and nowhere else, so this file is the route map:

    history    /  /tasks  /tasks/<id>  /retries  /workflows/<root>   /api/v1/tasks[/<id>]
               /api/v1/stats  /api/v1/retries  /api/v1/workflows/<root>  /api/v1/throughput
    fleet      /workers[/<host>]  /queues   /api/v1/workers[/<host>[/inspect]]  /api/v1/limits
               /api/v1/queues  /api/v1/queues/<name>/history
    schedules  /schedules[/<source>/<name>]   /api/v1/schedules[/<source>/<name>
               [/run|/enable|/disable|/thresholds]]
    control    /controls    /api/v1/tasks/<id>/revoke  /api/v1/tasks/revoke
               /api/v1/tasks/<id>/retry  /api/v1/tasks/retry
               /api/v1/rate-limits  /api/v1/time-limits  /api/v1/workers/<host>/<command>
    auth       /login  /logout
    accounts   /admin   /api/v1/me  /api/v1/users  /api/v1/tokens[/<id>]
    audit      /audit   /api/v1/audit[/<id>]
    health     /healthz  /readyz  /healthcheck (Flower's probe)
    flowerapi  Flower's /api/workers /api/tasks /api/task/... /api/worker/...
    metrics    /metrics (Prometheus)
    trouble    /trouble   /api/v1/trouble  /api/v1/trouble/tasks/<id>   (lost and stuck tasks)
    failures   /failures  /api/v1/failures[/<fingerprint>]               (failure groups)
    alerts     /alerts    /api/v1/alerts  /api/v1/alert-rules[/<id>]      (collector evaluates)
    live       Socket.IO namespace /live (rooms: overview, tasks, schedules, task:<id>,
               worker:<host>)

Each feature package (history/, fleet/, ...) has thin views over a service that owns its
SQL; web/ holds what they share (errors, parameter parsing, roles, security, layout).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from lookout.core.config import Settings

if TYPE_CHECKING:  # imported in create_app: `lookout collect` (dashboard.cli) never needs
    from flask import Flask  # Flask, whose import alone is about 16 MB of RSS

# Templates and static files sit beside the code: ../templates and ../static both in the
# repository and in the installed package (lookout/templates, lookout/static).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None, *, clock: Callable[[], float] = time.time,
               **overrides: Any) -> Flask:
    """Build the web app; `settings` (or LOOKOUT_* env plus `overrides`) configures it.

    `clock` is the one time source of every service (tests pass a fixed one).
    """
    from flask import Flask

    from lookout.collectors.message_queue import is_redis, probe_for
    from lookout.collectors.live_channel import LiveChannel, OnChannel
    from lookout.collectors.queues import QueueSampler
    from lookout.collectors.watched import watched_tasks_for
    from lookout.core.broadcast import CeleryBroadcaster
    from lookout.core.inspector import Inspector
    from lookout.core.sender import TaskSender
    from lookout.core.store.db import make_engine
    from lookout.dashboard.alerts import views as alerts_views
    from lookout.dashboard.alerts.service import AlertService
    from lookout.dashboard.audit import views as audit_views
    from lookout.dashboard.audit.service import AuditService
    from lookout.dashboard.auth import admin as accounts_views
    from lookout.dashboard.auth import guard
    from lookout.dashboard.auth import views as auth_views
    from lookout.dashboard.control import views as control_views
    from lookout.dashboard.control.retry import TaskRetrier
    from lookout.dashboard.control.service import ControlService
    from lookout.dashboard.fleet import views as fleet_views
    from lookout.dashboard.fleet.service import FleetService
    from lookout.dashboard.flowerapi import views as flowerapi_views
    from lookout.dashboard.health import views as health_views
    from lookout.dashboard.health.service import HealthCheck
    from lookout.dashboard.history import views as history_views
    from lookout.dashboard.history.service import HistoryService
    from lookout.dashboard.live.namespace import NAMESPACE, socketio
    from lookout.dashboard.failures import views as failures_views
    from lookout.dashboard.failures.service import FailureGroups
    from lookout.dashboard.live.limits import SocketLimits
    from lookout.dashboard.live.limits import install as install_socket_limits
    from lookout.dashboard.live.message_queue import client_manager
    from lookout.dashboard.live.sessions import LiveSessions
    from lookout.dashboard.metrics import views as metrics_views
    from lookout.dashboard.metrics.service import MetricsService
    from lookout.dashboard.schedules import views as schedules_views
    from lookout.dashboard.schedules.service import ScheduleService
    from lookout.dashboard.schedules.watch import ScheduleWatcher
    from lookout.dashboard.trouble import views as trouble_views
    from lookout.dashboard.trouble.service import TroubleService
    from lookout.dashboard.web.errors import register_error_handlers
    from lookout.dashboard.web import security
    from lookout.dashboard.web.layout import layout_context
    from lookout.dashboard.web.params import refuse_nul

    settings = settings or Settings.load(**overrides)
    # instance_path given: Flask cannot work one out below a namespace package (`lookout`);
    # Lookout keeps nothing there.
    app = Flask(__name__, template_folder=str(PACKAGE_ROOT / "templates"),
                static_folder=str(PACKAGE_ROOT / "static"),
                instance_path=str(PACKAGE_ROOT / "instance"))
    app.config.update(
        SECRET_KEY=settings.secret_key or _random_secret(),
        LOOKOUT=settings,
        JSON_SORT_KEYS=False,
    )
    # An id holding an encoded slash (/api/v1/tasks/%2F/revoke) must not be redirected to
    # the merged path, another endpoint (the bulk revoke), with an HTML 308 (a trial).
    app.url_map.merge_slashes = False

    engine = make_engine(settings.database_url)
    history_service = HistoryService(engine, clock, settings.lost_after)
    # The deployment's channel, used by the watched rooms, socketio and /healthz's check of
    # the queue live updates cross (collectors/message_queue.py). Named after the store, so
    # looked up at its first use: the web process starts, and says so, while that is down.
    channel = LiveChannel(settings, engine) if settings.message_queue else None
    on_redis = channel is not None and is_redis(settings.message_queue)
    app.extensions.update({
        "lookout.engine": engine,
        "lookout.history": history_service,
        "lookout.fleet": FleetService(engine, clock, settings.lost_after),
        "lookout.health": HealthCheck(
            engine, clock, settings.quiet_warning_after,
            message_queue=OnChannel(channel, lambda name: probe_for(
                settings.message_queue, name)) if on_redis else None),
        "lookout.audit": AuditService(engine, settings.audit_retention, clock),
        "lookout.inspector": Inspector.for_settings(settings),
        "lookout.queues": QueueSampler(settings, engine),
        "lookout.control": ControlService(engine, CeleryBroadcaster.for_settings(settings),
                                          history_service),
        "lookout.schedules": ScheduleService(engine, settings, clock),
        "lookout.live_channel": channel,
    })
    app.extensions["lookout.retry"] = TaskRetrier(
        engine, history_service, TaskSender(settings), app.extensions["lookout.control"].bulk_cap,
        clock, settings.lost_after)
    app.extensions["lookout.trouble"] = TroubleService(engine, history_service, settings, clock)
    app.extensions["lookout.failures"] = FailureGroups(engine, clock)
    app.extensions["lookout.alerts"] = AlertService(engine, clock)
    app.extensions["lookout.metrics"] = MetricsService(
        engine, app.extensions["lookout.fleet"], settings, clock)
    watcher = ScheduleWatcher(app.extensions["lookout.schedules"], lambda payload: socketio.emit(
        "schedules", payload, namespace=NAMESPACE, to=["schedules", "overview"]))
    # Started by the first live connection (live/namespace.py), once per process.
    app.extensions["lookout.live_starters"] = [watcher.start]

    # Which task rooms this process's sockets watch (collectors/watched.py): recorded by
    # the sessions, read by a collector in this process (`lookout run`, server.py).
    app.extensions["lookout.watched_tasks"] = OnChannel(
        channel, lambda name: watched_tasks_for(settings.message_queue, name)) \
        if on_redis else None
    app.extensions["lookout.live_sessions"] = LiveSessions(
        lambda sid: socketio.server.disconnect(sid, namespace=NAMESPACE),
        app.extensions["lookout.watched_tasks"])
    register_error_handlers(app)
    security.init_app(app)
    app.before_request(refuse_nul)  # does no work: a NUL in any input is a 400
    guard.init_app(app)  # then the guard, before any before_request that does work
    app.context_processor(layout_context)
    for blueprint in (history_views.bp, fleet_views.bp, flowerapi_views.bp, schedules_views.bp,
                      control_views.bp, control_views.pages_bp, auth_views.bp,
                      accounts_views.bp, audit_views.bp, health_views.bp, metrics_views.bp,
                      trouble_views.bp, failures_views.bp, alerts_views.bp):
        app.register_blueprint(blueprint)
    socketio.init_app(app, async_mode="threading", cors_allowed_origins=[],
                      client_manager=client_manager(settings.message_queue, channel))
    app.extensions["lookout.socket_limits"] = limits = SocketLimits(
        settings.max_sockets, settings.max_sockets_per_client)
    install_socket_limits(socketio.server, limits, authenticated=lambda environ: (
        guard.handshake_identity(app, environ) is not None))
    security.guard_hosts(app)  # outermost: Socket.IO included
    return app


def _random_secret() -> str:
    import secrets

    return secrets.token_hex(32)
