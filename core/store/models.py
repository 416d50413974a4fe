"""The history schema: tasks, their event timelines, workers, rollups and collector health.

Timestamps are epoch seconds (float) throughout: they come that way from Celery events,
sort and compare cheaply on SQLite and PostgreSQL alike, and need no timezone handling.
Alembic migrations in ``collectors/migrations`` are the source of truth for the database;
these models must match them (a test compares the two).
"""
from __future__ import annotations

from sqlalchemy import Boolean, Float, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Task(Base):
    """One row per task id: the merged result of every event seen for it."""

    __tablename__ = "tasks"

    uuid: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    # (final, state_ts, rank) orders states; see collectors.merge.
    state_ts: Mapped[float] = mapped_column(Float)
    worker: Mapped[str | None] = mapped_column(String(255))
    queue: Mapped[str | None] = mapped_column(String(255))
    exchange: Mapped[str | None] = mapped_column(String(255))
    routing_key: Mapped[str | None] = mapped_column(String(255))
    args: Mapped[str | None] = mapped_column(Text)
    kwargs: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    exception: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    # Epoch seconds, like every time here; the events carry ISO text (collectors/events.py).
    eta: Mapped[float | None] = mapped_column(Float)
    expires: Mapped[float | None] = mapped_column(Float)
    root_id: Mapped[str | None] = mapped_column(String(255))
    parent_id: Mapped[str | None] = mapped_column(String(255))
    # First time the task is known to exist (sent, else received, else first event):
    # never null, so it is the default sort and pagination key.
    timestamp: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    succeeded_at: Mapped[float | None] = mapped_column(Float)
    failed_at: Mapped[float | None] = mapped_column(Float)
    retried_at: Mapped[float | None] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    # The latest task-revoked's `expired`: null until one is seen. Shown as EXPIRED.
    expired: Mapped[bool | None] = mapped_column(Boolean)
    rejected_at: Mapped[float | None] = mapped_column(Float)
    runtime: Mapped[float | None] = mapped_column(Float)
    queue_wait: Mapped[float | None] = mapped_column(Float)
    # Collector receive time of the last change: drives retention and live "changed since".
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_tasks_timestamp", "timestamp", "uuid"),
        Index("ix_tasks_state_timestamp", "state", "timestamp"),
        Index("ix_tasks_name_timestamp", "name", "timestamp"),
        Index("ix_tasks_worker_timestamp", "worker", "timestamp"),
        Index("ix_tasks_queue_timestamp", "queue", "timestamp"),
        Index("ix_tasks_root_id", "root_id"),
        Index("ix_tasks_parent_id", "parent_id"),
        Index("ix_tasks_received_at", "received_at"),
        Index("ix_tasks_started_at", "started_at"),
        Index("ix_tasks_runtime", "runtime"),
        Index("ix_tasks_updated_at", "updated_at"),
        # Partial: only failed tasks pay for it. "This worker's failures" was the slowest
        # common filter (the worker's every row read to find its few failures, 84-124 ms
        # cold at 1M tasks); a state equality (not IN) lets both planners use it.
        Index("ix_tasks_failed_worker_timestamp", "worker", "timestamp",
              sqlite_where=text("state = 'FAILURE'"),
              postgresql_where=text("state = 'FAILURE'")),
        # Partial, failed tasks only: `state=FAILURE&sort=-runtime` ("the longest failures")
        # sorted 60,000 failures at 1M tasks (110-160 ms); this keeps them in order.
        Index("ix_tasks_failed_runtime", "runtime", "uuid",
              sqlite_where=text("state = 'FAILURE'"),
              postgresql_where=text("state = 'FAILURE'")),
        # Partial: only ETA tasks pay for it on insert; `eta >= x` implies the condition.
        Index("ix_tasks_eta", "eta", sqlite_where=text("eta IS NOT NULL"),
              postgresql_where=text("eta IS NOT NULL")),
    )


class TaskEvent(Base):
    """One row per distinct event of a task: its timeline. Duplicates are refused by key."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_uuid: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32))
    hostname: Mapped[str] = mapped_column(String(255))
    timestamp: Mapped[float] = mapped_column(Float)
    local_received: Mapped[float] = mapped_column(Float)
    clock: Mapped[int] = mapped_column(Integer, default=0)
    # JSON object of the event's own fields (exception, runtime, retries, signum, ...).
    info: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("task_uuid", "type", "timestamp", "hostname",
                         name="uq_task_events_identity"),
        Index("ix_task_events_local_received", "local_received"),
    )


class Worker(Base):
    """Latest known state of each worker; liveness is judged from receive time."""

    __tablename__ = "workers"

    hostname: Mapped[str] = mapped_column(String(255), primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen: Mapped[float] = mapped_column(Float)
    last_heartbeat: Mapped[float] = mapped_column(Float)  # collector receive time
    last_event_ts: Mapped[float | None] = mapped_column(Float)  # worker's own clock
    freq: Mapped[float] = mapped_column(Float, default=2.0)
    active: Mapped[int | None] = mapped_column(Integer)
    processed: Mapped[int | None] = mapped_column(Integer)
    loadavg: Mapped[str | None] = mapped_column(String(64))  # JSON list
    pid: Mapped[int | None] = mapped_column(Integer)
    sw_ident: Mapped[str | None] = mapped_column(String(64))
    sw_ver: Mapped[str | None] = mapped_column(String(64))
    sw_sys: Mapped[str | None] = mapped_column(String(64))
    utcoffset: Mapped[float | None] = mapped_column(Float)
    # Collector time of its latest (re)start: a worker-online, a heartbeat after being
    # offline, or a new pid. Tasks it held from before then died with the old process.
    online_since: Mapped[float | None] = mapped_column(Float)


class TaskRollup(Base):
    """Per task name and minute: counts by outcome and a runtime histogram."""

    __tablename__ = "task_rollups"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)  # epoch minute start
    received: Mapped[int] = mapped_column(Integer, default=0)
    started: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    retried: Mapped[int] = mapped_column(Integer, default=0)
    revoked: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    runtime_count: Mapped[int] = mapped_column(Integer, default=0)
    runtime_sum: Mapped[float] = mapped_column(Float, default=0.0)
    runtime_hist: Mapped[str | None] = mapped_column(Text)  # JSON {bucket_index: count}

    __table_args__ = (Index("ix_task_rollups_bucket", "bucket"),)


class QueueSample(Base):
    """Broker queue depth over time, sampled by the collector."""

    __tablename__ = "queue_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(255))
    timestamp: Mapped[float] = mapped_column(Float)
    messages: Mapped[int] = mapped_column(Integer)
    consumers: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_queue_samples_queue_ts", "queue", "timestamp"),)


class CollectorStatus(Base):
    """Written by each collector every second; read by /healthz in any web process."""

    __tablename__ = "collector_status"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    broker: Mapped[str] = mapped_column(String(255))  # password redacted
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    connected_since: Mapped[float | None] = mapped_column(Float)
    disconnected_since: Mapped[float | None] = mapped_column(Float)
    last_event_at: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    # JSON: counters (received, stored, rejected by reason, dropped), rates, write lag.
    stats: Mapped[str | None] = mapped_column(Text)


class Deployment(Base):
    """One row: this store's random id. Names what belongs to one deployment outside the
    store, such as its Socket.IO message-queue channel on a Redis shared with others."""

    __tablename__ = "deployment"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)


class ScheduleWatch(Base):
    """Lookout's own record of one beat entry: when it was first seen (what an entry
    never seen running is measured from) and the thresholds an operator set for it
    (None: derived from its schedule)."""

    __tablename__ = "schedule_watch"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_seen_at: Mapped[float] = mapped_column(Float)
    grace: Mapped[float | None] = mapped_column(Float)
    late_after: Mapped[float | None] = mapped_column(Float)
    running_limit: Mapped[float | None] = mapped_column(Float)
    failures: Mapped[int | None] = mapped_column(Integer)
    updated_by: Mapped[str | None] = mapped_column(String(150))
    updated_at: Mapped[float | None] = mapped_column(Float)


class MetricTotal(Base):
    """One monotonic Prometheus series (a counter, or a histogram's bucket, sum or count),
    added to by the collector in the transaction that stores the events, so /metrics
    reads the same totals from any web process and after any restart."""

    __tablename__ = "metric_totals"

    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    labels: Mapped[str] = mapped_column(String(1024), primary_key=True)  # canonical JSON
    value: Mapped[float] = mapped_column(Float, default=0.0)


class MetricLabel(Base):
    """Label values admitted into metric_totals, per kind (task name, hostname...): past
    a kind's cap new values count as "other", which keeps the series count bounded."""

    __tablename__ = "metric_labels"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    # When last counted (written at most hourly); with the cap full, a value unseen for a
    # day gives its place to a new one (collectors/label_caps.py).
    last_seen: Mapped[float | None] = mapped_column(Float)


class TaskLink(Base):
    """A task Lookout sent as a retry of another (UI, API, Flower-style apply): shown on
    both task pages. Events cannot carry the link, so Lookout keeps it when it sends."""

    __tablename__ = "task_links"

    task_uuid: Mapped[str] = mapped_column(String(255), primary_key=True)  # the new task
    retry_of: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str | None] = mapped_column(String(150))
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_task_links_retry_of", "retry_of"),)


class RevokeRequest(Base):
    """A revoke Lookout sent. A worker holding an ETA task announces the revoke only when
    the ETA comes; till then its events say RECEIVED, and this says a revoke is pending."""

    __tablename__ = "revoke_requests"

    task_uuid: Mapped[str] = mapped_column(String(255), primary_key=True)
    requested_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_revoke_requests_requested_at", "requested_at"),)


class AlertRule(Base):
    """One alert rule: a kind (core/alerting.py), its parameters and where to notify.
    Rules come from the admin API or from LOOKOUT_ALERT_RULES_FILE (source "file")."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(150), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    notify: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of channel URLs
    cooldown: Mapped[float] = mapped_column(Float, default=600.0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(16), default="api")
    updated_by: Mapped[str | None] = mapped_column(String(150))
    updated_at: Mapped[float] = mapped_column(Float)


class Alert(Base):
    """One firing of a rule about one thing (a task name, worker, queue...), kept after it
    resolves: the Alerts page's history. `deliveries` records every notification sent."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(Integer)
    rule_name: Mapped[str] = mapped_column(String(150))
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # firing | resolved
    message: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)
    fired_at: Mapped[float] = mapped_column(Float)
    resolved_at: Mapped[float | None] = mapped_column(Float)
    # Why it resolved, in words (None: "cleared", the rule no longer finds its key).
    resolution: Mapped[str | None] = mapped_column(String(500))
    # While firing: since when the rule has no longer found its key. It resolves once that
    # lasts the rule's cooldown; found again meanwhile, it is the same alert (None again).
    clear_since: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    deliveries: Mapped[str] = mapped_column(Text, default="[]")  # JSON

    __table_args__ = (Index("ix_alerts_rule_key", "rule_id", "key", "status"),
                      Index("ix_alerts_fired_at", "fired_at"))


class WorkerQueue(Base):
    """A queue a worker said it consumes (`inspect active_queues`, asked by the queue
    sampler), kept after the worker goes: which worker to bring back for a queue nobody
    consumes any more."""

    __tablename__ = "worker_queues"

    hostname: Mapped[str] = mapped_column(String(255), primary_key=True)
    queue: Mapped[str] = mapped_column(String(255), primary_key=True)
    seen_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_worker_queues_queue", "queue"),)


class ScheduleStatus(Base):
    """Each beat entry's latest health, written by the web process that assesses it
    (schedules/watch.py), read by the collector's alert rules."""

    __tablename__ = "schedule_status"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    task: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    # When its next run was due as judged at `updated_at` (None: unknown, or never again).
    due_at: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Lease(Base):
    """A job only one process may run at a time (alert evaluation), held until expiry."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[float] = mapped_column(Float)


class LoginFailure(Base):
    """One failed login, by client address and by account name: the throttle counts them
    in the store so every web process shares one limit (a guesser spreading attempts over
    gunicorn instances gets no more tries)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),
                      Index("ix_login_failures_at", "at"))
