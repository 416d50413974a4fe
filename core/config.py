"""Lookout settings: one dataclass, filled from defaults, then LOOKOUT_* env, then CLI flags.

Both the collector and the web process read the same settings so one environment file
configures a whole deployment. Nothing here touches the network or the disk.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | float | int) -> float:
    """Turn '90s', '15m', '7d' or a number of seconds into seconds; ValueError otherwise."""
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 12h, 7d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def redact_url(url: str) -> str:
    """Hide the password in a broker or database URL before it is shown or logged.

    The user part ends at the *last* `@` before any query or fragment: passwords often
    hold `@` or `/` unescaped, and each must stay hidden whole.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    ends = [i for i in (rest.find("?"), rest.find("#")) if i >= 0]
    at = rest.rfind("@", 0, min(ends, default=len(rest)))
    userinfo = rest[:at] if at >= 0 else ""
    if ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{rest[at + 1:]}"


@dataclass
class Settings:
    """Everything configurable; field names map to LOOKOUT_<UPPER_NAME> variables."""

    broker_url: str = "redis://127.0.0.1:6379/0"
    # Empty: the SQLite file lookout.db in the data folder (see `data_folder`).
    database_url: str = ""
    # Lookout's own files (the default SQLite store, the collector's spill file). Empty:
    # $XDG_DATA_HOME/lookout, else ~/.local/share/lookout.
    data_dir: str = ""
    # Retention of raw task rows and timelines: by age and/or by row count (0 = no cap).
    retention: float = 7 * 86400.0
    max_tasks: int = 1_000_000
    # Per-minute rollups are tiny; keep them much longer so charts over weeks stay cheap.
    rollup_retention: float = 90 * 86400.0
    # Workers not heard for this long are dropped from the list (0: keep forever).
    worker_retention: float = 7 * 86400.0
    # The audit trail outlives task history: who did what stays answerable for a year.
    audit_retention: float = 365 * 86400.0
    # Longest text kept for args/kwargs/result/exception/traceback; longer gets a marker.
    max_field_size: int = 16_384
    # RabbitMQ only: a named queue that outlives the collector for this long.
    event_queue_name: str = "lookout.events"
    event_queue_expires: float = 3600.0
    event_queue_max_length: int = 2_000_000
    enable_events_interval: float = 30.0
    # A refused connection costs the broker nothing: retrying every second means a broker
    # that comes back is consumed again within a second (on Redis, later is lost).
    reconnect_max_backoff: float = 1.0
    flush_interval: float = 0.25
    batch_size: int = 5000
    # Memory (MB, an estimate) the collector's backlog may hold before it spills to a file
    # in the data folder (Redis; RabbitMQ keeps the backlog in the broker). 0: no bound.
    backlog_memory: int = 100
    # On SIGTERM: write for at most this long, then spill (Redis) or leave unacked (AMQP).
    stop_timeout: float = 20.0
    queue_sample_interval: float = 10.0
    # /healthz warns when a connected collector has heard no event for this long.
    quiet_warning_after: float = 180.0
    # Trouble: an open task whose worker has been silent this long is lost; one open for
    # stuck_factor x its name's p95 runtime (at least stuck_min; stuck_default when the
    # name has no runtime history yet) is stuck.
    lost_after: float = 60.0
    stuck_factor: float = 10.0
    stuck_min: float = 60.0
    stuck_default: float = 3600.0
    # Alerts, evaluated by the collector that holds the "alerts" lease.
    alert_interval: float = 15.0
    alert_rules_file: str = ""  # TOML: [[rule]] tables, loaded at start and when changed
    alert_webhook_url: str = ""  # default channel for rules that name none
    alert_email_to: str = ""
    alert_email_from: str = "lookout@localhost"
    smtp_url: str = ""  # smtp://user:pass@host:587 (STARTTLS) or smtps://host:465
    # Prometheus label caps (distinct values per label kind; later ones count as "other").
    metrics_max_task_names: int = 500
    metrics_max_hostnames: int = 200
    metrics_max_queues: int = 100
    metrics_max_exceptions: int = 100
    # Workers offline this long leave /metrics' worker gauges (still on the Workers page
    # until worker_retention): a fleet whose hostnames change with every deploy kept
    # each retired worker at celery_worker_up 0 for a week (a trial).
    metrics_offline_workers_kept: float = 86400.0
    # Web side.
    host: str = "127.0.0.1"
    port: int = 5555
    message_queue: str = ""  # redis:// URL linking collector and web processes
    # Its pub/sub channel; empty: "lookout-<the store's deployment id>", so deployments
    # sharing one Redis never see each other's updates (pub/sub ignores database numbers).
    message_queue_channel: str = ""
    secret_key: str = ""
    # Host names the web app answers to (comma-separated; "*" for any). Empty: loopback
    # names plus --host. A DNS-rebinding page reaches 127.0.0.1 under its own name.
    allowed_hosts: str = ""
    auth: bool = True
    # Reverse proxies in front of the web app whose X-Forwarded-For/Proto/Host/Port are
    # believed (Werkzeug's ProxyFix); 0 trusts none.
    trusted_proxies: int = 0
    # Session cookies always Secure (they already are on any HTTPS request Lookout sees).
    secure_cookies: bool = False
    # Live sockets per web process (0: no cap). In threading mode each holds a server
    # thread, so keep gunicorn's --threads above this (README: production layout).
    max_sockets: int = 500
    # Per user or token (per address with --no-auth): a page opened many times or a
    # leaky script cannot take every slot.
    max_sockets_per_client: int = 20
    # /metrics: "loopback" (anonymous from this machine, a token or login otherwise),
    # "open" (anonymous from anywhere) or "auth" (always a token or login).
    metrics_access: str = "loopback"
    read_only: bool = False
    # Browser libraries: empty means the builds bundled in the package (works offline).
    chartjs_url: str = ""
    socketio_url: str = ""
    collector_name: str = "default"
    celery_app: str = ""  # -A proj: broker, connection settings, beat schedule
    # django-celery-beat's database, read directly (SQLAlchemy URL) when Django is not
    # importable here; with -A on a Django project the project's DATABASES is used.
    beat_database_url: str = ""
    # Set from the Celery app by `use_celery_app`, never from the environment.
    broker_conf: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    _DURATIONS = ("retention", "rollup_retention", "audit_retention", "worker_retention",
                  "event_queue_expires",
                  "enable_events_interval", "reconnect_max_backoff", "flush_interval",
                  "queue_sample_interval", "quiet_warning_after", "lost_after", "stuck_min",
                  "stuck_default", "alert_interval", "stop_timeout",
                  "metrics_offline_workers_kept")

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then LOOKOUT_* variables, then explicit overrides (None means unset)."""
        environ = os.environ if environ is None else environ
        settings = cls()
        settings.database_url = ""  # the default depends on data_dir, known at the end
        for f in fields(cls):
            if f.name in ("extra", "broker_conf"):
                continue
            raw = environ.get(f"LOOKOUT_{f.name.upper()}")
            if raw is not None and raw != "":
                settings._set(f.name, raw, source=f"LOOKOUT_{f.name.upper()}")
        for name, value in overrides.items():
            if value is not None:
                option = _OPTIONS.get(name) or f"--{name.replace('_', '-')}"
                settings._set(name, value, source=option)
        settings.__post_init__()
        return settings

    def __post_init__(self) -> None:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_folder() / 'lookout.db'}"

    def data_folder(self) -> Path:
        """Where Lookout keeps its own files: --data-dir, else the XDG data folder."""
        folder = self.data_dir or os.environ.get("LOOKOUT_DATA_DIR", "")
        if not folder:
            base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
            folder = Path(base) / "lookout"
        return Path(folder).expanduser().absolute()

    def _set(self, name: str, value: Any, source: str) -> None:
        """Coerce one value to the field's type, naming the source on error."""
        current = getattr(self, name)
        try:
            if name in self._DURATIONS:
                value = parse_duration(value)
            elif isinstance(current, bool):
                value = value if isinstance(value, bool) else _parse_bool(str(value))
            elif isinstance(current, int):
                value = int(value)
            elif isinstance(current, float):
                value = float(value)
            if name == "collector_name":
                value = _collector_name(str(value))
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        setattr(self, name, value)

    def trusted_hosts(self) -> list[str] | None:
        """The Host names to answer to, or None for any (LOOKOUT_ALLOWED_HOSTS=*).

        The loopback names are always among them: a DNS-rebinding page sends its own name
        as Host, never these, and `curl http://127.0.0.1:5555/metrics` on the machine
        itself (the default metrics access) must keep working once the public name is set.
        """
        names = [n.strip() for n in self.allowed_hosts.split(",") if n.strip()]
        if "*" in names:
            return None
        if not names and self.host not in ("0.0.0.0", "::", ""):
            names.append(self.host)
        return ["localhost", "127.0.0.1", "::1", *names]

    def use_celery_app(self, celery_app: Any, broker_explicit: bool) -> None:
        """Take the broker and how to reach it from the user's app (`-A proj`).

        Its broker URL wins over the default but not over an explicit --broker or
        LOOKOUT_BROKER_URL; its transport options, SSL and login settings always apply,
        since they describe how to reach the broker the app uses.
        """
        from lookout.core.celery_client import app_broker_conf

        self.extra["celery_app"] = celery_app
        self.broker_conf = app_broker_conf(celery_app)
        app_broker = celery_app.conf.broker_url
        if not broker_explicit and app_broker:
            self.broker_url = app_broker

    @property
    def timezone(self) -> str | None:
        """The Celery app's timezone (beat schedules are read in it), if an app is bound."""
        return self.broker_conf.get("timezone")

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


# The command-line options named otherwise than their settings (dashboard/cli.py), for
# errors that name where a value came from.
_OPTIONS = {"broker_url": "--broker", "database_url": "--database",
            "collector_name": "--name"}
MAX_COLLECTOR_NAME = 64  # what collector_status.name and the leases' holder ids keep


def _collector_name(raw: str) -> str:
    """A collector's name, refused when the store could not keep it whole: a 79-character
    `--name "$(hostname)"` collected, but its status row failed every second and it never
    showed in /healthz (a trial)."""
    name = raw.strip()
    if not name:
        raise ValueError("a collector name cannot be empty")
    if len(name) > MAX_COLLECTOR_NAME:
        raise ValueError(f"a collector name has at most {MAX_COLLECTOR_NAME} characters, "
                         f"not {len(name)}: {name[:MAX_COLLECTOR_NAME]}...")
    return name


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")
