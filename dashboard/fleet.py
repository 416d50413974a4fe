"""Workers and Queues: pages, live queue depth, depth history and per-worker inspect.

Worker lists and liveness come from the history API (/api/v1/workers, fed by events);
this blueprint adds what only the broker knows: queue depth now, depth over time from the
collector's samples, and what a worker answers to `inspect`. Views parse, call a
service, serialise; broker trouble becomes a 503.
"""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, render_template, request
from sqlalchemy import select

from collectors.config import redact_url
from collectors.queues import QueueSampler
from collectors.store.models import QueueSample, Worker
from dashboard.errors import ApiError
from dashboard.inspector import BrokerUnavailable, Inspector
from dashboard.query import parse_window, reject_unknown

bp = Blueprint("fleet", __name__)
# Most points a depth chart gets; samples are averaged into buckets beyond that.
MAX_POINTS = 300
MAX_NAME = 255


@bp.record_once
def _setup(state) -> None:
    """One inspector and one (read-only here) sampler per app; nothing connects yet."""
    app = state.app
    settings = app.config["LOOKOUT"]
    engine = app.extensions["lookout.engine"]
    app.extensions.setdefault("lookout.inspector", Inspector(
        settings.broker_url, timeout=float(settings.extra.get("inspect_timeout", 1.5))))
    app.extensions.setdefault("lookout.queues", QueueSampler(settings, engine))


def _inspector() -> Inspector:
    return current_app.extensions["lookout.inspector"]


def _sampler() -> QueueSampler:
    return current_app.extensions["lookout.queues"]


def _broker_down(exc: Exception) -> ApiError:
    url = redact_url(current_app.config["LOOKOUT"].broker_url)
    return ApiError(503, f"broker {url} unavailable: {exc}")


@bp.get("/workers")
def workers_page():
    return render_template("workers.html", page="workers")


@bp.get("/workers/<hostname>")
def worker_page(hostname: str):
    return render_template("worker.html", page="worker", hostname=hostname[:MAX_NAME])


@bp.get("/queues")
def queues_page():
    settings = current_app.config["LOOKOUT"]
    return render_template("queues.html", page="queues",
                           sample_interval=settings.queue_sample_interval)


@bp.get("/api/v1/workers/<hostname>/inspect")
def inspect_worker(hostname: str):
    """What the worker says about itself; 404 if neither it nor the history knows it."""
    reject_unknown(request.args, frozenset())
    try:
        report = _inspector().worker(hostname[:MAX_NAME])
    except BrokerUnavailable as exc:
        raise _broker_down(exc) from None
    if not report["responded"] and not _known_worker(hostname):
        raise ApiError(404, f"no worker named {hostname[:100]!r} (no reply, no history)")
    return jsonify(report)


def _known_worker(hostname: str) -> bool:
    engine = current_app.extensions["lookout.engine"]
    with engine.connect() as conn:
        return conn.scalar(select(Worker.hostname).where(Worker.hostname == hostname)) \
            is not None


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
    return jsonify(
        broker=redact_url(settings.broker_url),
        transport=transport,
        measured_at=time.time(),
        # RabbitMQ counts consumers itself; on Redis they come from inspect, if it answered.
        consumers_known=active is not None or not transport.startswith("redis"),
        items=[d.as_dict() for d in depths],
    )


@bp.get("/api/v1/queues/<path:name>/history")
def queue_history(name: str):
    """Sampled depth over a window, bucketed to at most MAX_POINTS points (max per bucket)."""
    reject_unknown(request.args, frozenset({"window"}))
    window = parse_window(request.args.get("window"))
    now = time.time()
    since = now - window
    engine = current_app.extensions["lookout.engine"]
    with engine.connect() as conn:
        rows = conn.execute(
            select(QueueSample.timestamp, QueueSample.messages, QueueSample.consumers)
            .where(QueueSample.queue == name, QueueSample.timestamp >= since)
            .order_by(QueueSample.timestamp)).all()
        if not rows and conn.scalar(select(QueueSample.id).where(
                QueueSample.queue == name).limit(1)) is None:
            if name not in _sampler().queue_names():
                raise ApiError(404, f"no queue named {name[:100]!r} has been seen")
    step = max(float(current_app.config["LOOKOUT"].queue_sample_interval),
               window / MAX_POINTS)
    return jsonify(queue=name, window=window, since=since, until=now, step=step,
                   points=_bucket(rows, step))


def _bucket(rows, step: float) -> list[dict]:
    """Keep the deepest sample of each bucket: a backlog spike must not be averaged away."""
    points: list[dict] = []
    for ts, messages, consumers in rows:
        start = ts - ts % step
        if points and points[-1]["t"] == start:
            last = points[-1]
            last["messages"] = max(last["messages"], messages)
            if consumers is not None:
                last["consumers"] = consumers
        else:
            points.append({"t": start, "messages": messages, "consumers": consumers})
    return points
