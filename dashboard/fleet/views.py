"""Workers and Queues: pages, the workers API, live queue depth, depth history, inspect.

Worker lists and liveness come from the store (fed by events); what only the broker knows
comes from it on request: queue depth now and what a worker answers to `inspect`.
Broker trouble becomes a 503.
"""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, render_template, request

from lookout.collectors.queues import QueueSampler
from lookout.core.config import redact_url
from lookout.core.inspector import CALLS as INSPECT_CALLS
from lookout.core.inspector import BrokerUnavailable, Inspector
from lookout.dashboard.fleet.service import FleetService
from lookout.dashboard.web.errors import ApiError, bad_parameter, broker_down
from lookout.dashboard.web.params import parse_limit, parse_window, reject_unknown

bp = Blueprint("fleet", __name__)
MAX_NAME = 255


def _fleet() -> FleetService:
    return current_app.extensions["lookout.fleet"]


def _inspector() -> Inspector:
    return current_app.extensions["lookout.inspector"]


def _sampler() -> QueueSampler:
    return current_app.extensions["lookout.queues"]


def _broker_down(exc: Exception) -> ApiError:
    return broker_down(current_app.config["LOOKOUT"].broker_url, exc)


@bp.get("/workers")
def workers_page():
    return render_template("fleet/workers.html", page="workers")


# <path:>: a hostname may hold "/" (celery -n takes any name); the browser's %2F arrives
# decoded. A hostname ending in "/inspect" reads as its inspect call: the price of that.
@bp.get("/workers/<path:hostname>")
def worker_page(hostname: str):
    return render_template("fleet/worker.html", page="worker", hostname=hostname[:MAX_NAME])


@bp.get("/queues")
def queues_page():
    settings = current_app.config["LOOKOUT"]
    return render_template("fleet/queues.html", page="queues",
                           sample_interval=settings.queue_sample_interval)


WORKER_STATUSES = ("online", "heartbeat-missed", "offline", "unknown")


@bp.get("/api/v1/workers")
def list_workers():
    reject_unknown(request.args, frozenset({"status", "limit", "cursor"}))
    status = request.args.get("status") or None
    if status is not None and status not in WORKER_STATUSES:
        raise bad_parameter("status", f"one of {', '.join(WORKER_STATUSES)}")
    cursor = request.args.get("cursor") or None
    if cursor is not None and len(cursor) > 255:
        raise bad_parameter("cursor", "a hostname from next_cursor")
    limit = parse_limit(request.args.get("limit"), default=500, maximum=5000)
    return jsonify(_fleet().page_workers(status, limit, cursor))


@bp.get("/api/v1/workers/<path:hostname>")
def get_worker(hostname: str):
    reject_unknown(request.args, frozenset())
    return jsonify(_fleet().get_worker(hostname))


@bp.get("/api/v1/workers/<path:hostname>/inspect")
def inspect_worker(hostname: str):
    """What the worker says about itself; 404 at once for a name the history does not
    know: asking the broker first kept the caller 2-3 s for every made-up name (a
    hostile-input trial), and a live worker is known from its first heartbeat."""
    # No `method=`: every inspect call runs, side by side. The 400 said "(allowed: )".
    reject_unknown(request.args, frozenset(), instead="it runs every inspect method: "
                   + ", ".join(INSPECT_CALLS))
    if not _fleet().known_worker(hostname):
        raise ApiError(404, f"no worker named {hostname[:100]!r} in the history "
                            "(a worker is known from its first heartbeat)")
    try:
        report = _inspector().worker(hostname[:MAX_NAME])
    except BrokerUnavailable as exc:
        raise _broker_down(exc) from None
    return jsonify(report)


@bp.get("/api/v1/limits")
def current_limits():
    """Rate and time limits in force, from every worker that answers (Controls page)."""
    reject_unknown(request.args, frozenset())
    try:
        return jsonify(_inspector().limits())
    except BrokerUnavailable as exc:
        raise _broker_down(exc) from None


@bp.get("/api/v1/queues")
def list_queues():
    """Depth of every known queue, read from the broker now."""
    reject_unknown(request.args, frozenset())
    settings = current_app.config["LOOKOUT"]
    active = _inspector().recent_active_queues()
    try:
        depths = _sampler().current(active)
    except Exception as exc:  # kombu raises OperationalError and transport-specific errors
        raise _broker_down(exc) from None
    transport = settings.broker_url.split("://", 1)[0]
    items = [d.as_dict() for d in depths]
    # A queue nobody consumes now names the workers that last did (the one to restart).
    idle = [d["name"] for d in items if d["consumers"] == 0]
    last = _fleet().last_consumers(idle)
    for item in items:
        if item["consumers"] == 0:
            item["last_consumers"] = last.get(item["name"], [])
    return jsonify(
        broker=redact_url(settings.broker_url),
        transport=transport,
        measured_at=time.time(),
        # RabbitMQ counts consumers itself; on Redis they come from inspect, if it answered.
        consumers_known=active is not None or not transport.startswith("redis"),
        # RabbitMQ: the collectors' own event queue, listed with the rest (its consumers
        # are collectors, not workers: pages word its idleness so).
        events_queue=None if transport.startswith("redis") else settings.event_queue_name,
        items=items,
    )


@bp.get("/api/v1/queues/<path:name>/history")
def queue_history(name: str):
    reject_unknown(request.args, frozenset({"window"}))
    window = parse_window(request.args.get("window"))
    interval = current_app.config["LOOKOUT"].queue_sample_interval
    history, ever_sampled = _fleet().queue_history(name, window, interval)
    if not ever_sampled and name not in _sampler().queue_names():
        raise ApiError(404, f"no queue named {name[:100]!r} has been seen")
    return jsonify(history)
