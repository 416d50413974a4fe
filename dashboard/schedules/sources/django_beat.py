"""django-celery-beat's tables, read (and toggled) directly with SQLAlchemy.

Lookout never calls django.setup(): with `-A` on a Django project it reads the project's
DATABASES setting and opens the same database itself, and without Django a
LOOKOUT_BEAT_DATABASE_URL does the same. So one code path serves PostgreSQL, MySQL/MariaDB
and SQLite, in Lookout's threads, with no ORM state to share with the user's project.

Enabling or disabling writes what the admin's save() writes: the `enabled` flag, a cleared
`last_run_at` on disable, `date_changed`, and the `periodictasks` change marker a running
DatabaseScheduler polls (every 5 s) to reload its schedule.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    Boolean, Column, DateTime, ForeignKey, Integer, MetaData, Numeric, String, Table, Text,
    create_engine, insert, select, update,
)
from sqlalchemy.engine import URL, Engine, make_url

from lookout.core.config import redact_url
from lookout.dashboard.schedules import timing
from lookout.dashboard.schedules.sources import DJANGO, BeatEntry, SourceReport

PREFIX = "django_celery_beat_"
metadata = MetaData()
interval_table = Table(PREFIX + "intervalschedule", metadata,
                       Column("id", Integer, primary_key=True),
                       Column("every", Integer), Column("period", String(24)))
crontab_table = Table(PREFIX + "crontabschedule", metadata,
                      Column("id", Integer, primary_key=True),
                      Column("minute", String(240)), Column("hour", String(96)),
                      Column("day_of_week", String(64)), Column("day_of_month", String(124)),
                      Column("month_of_year", String(64)), Column("timezone", String(63)))
solar_table = Table(PREFIX + "solarschedule", metadata,
                    Column("id", Integer, primary_key=True), Column("event", String(24)),
                    Column("latitude", Numeric(9, 6)), Column("longitude", Numeric(9, 6)))
clocked_table = Table(PREFIX + "clockedschedule", metadata,
                      Column("id", Integer, primary_key=True),
                      Column("clocked_time", DateTime(timezone=True)))
task_table = Table(
    PREFIX + "periodictask", metadata,
    Column("id", Integer, primary_key=True), Column("name", String(200)),
    Column("task", String(200)), Column("args", Text), Column("kwargs", Text),
    Column("queue", String(200)), Column("exchange", String(200)),
    Column("routing_key", String(200)), Column("headers", Text), Column("priority", Integer),
    Column("expires", DateTime(timezone=True)), Column("expire_seconds", Integer),
    Column("one_off", Boolean), Column("start_time", DateTime(timezone=True)),
    Column("enabled", Boolean), Column("last_run_at", DateTime(timezone=True)),
    Column("total_run_count", Integer), Column("date_changed", DateTime(timezone=True)),
    Column("description", Text),
    Column("interval_id", ForeignKey(interval_table.c.id)),
    Column("crontab_id", ForeignKey(crontab_table.c.id)),
    Column("solar_id", ForeignKey(solar_table.c.id)),
    Column("clocked_id", ForeignKey(clocked_table.c.id)))
changes_table = Table(PREFIX + "periodictasks", metadata,
                      Column("ident", Integer, primary_key=True),
                      Column("last_update", DateTime(timezone=True)))
PERIOD_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1,
                  "microseconds": 1e-6}
DJANGO_ONLY_OPTIONS = frozenset({"isolation_level", "server_side_binding", "assume_role",
                                 "pool", "init_command", "transaction_mode", "timeout"})
DJANGO_DRIVERS = {"sqlite3": "sqlite", "postgresql": "postgresql+psycopg",
                  "postgis": "postgresql+psycopg", "mysql": "mysql+pymysql"}


@dataclass(frozen=True)
class DjangoDatabase:
    """Where the tables are, and the zone of naive datetimes (Django's USE_TZ=False)."""
    url: str
    origin: str
    naive_zone: str = "UTC"


def database_for(celery_app, settings) -> DjangoDatabase | None:
    """LOOKOUT_BEAT_DATABASE_URL, else the Django project's database when it has the app."""
    if settings.beat_database_url:
        return DjangoDatabase(settings.beat_database_url, "LOOKOUT_BEAT_DATABASE_URL")
    module = os.environ.get("DJANGO_SETTINGS_MODULE")
    if celery_app is None or not module:
        return None
    try:
        from django.conf import settings as django_settings

        apps = list(django_settings.INSTALLED_APPS)
        database = django_settings.DATABASES["default"]
        naive_zone = "UTC" if getattr(django_settings, "USE_TZ", True) else \
            str(django_settings.TIME_ZONE or "UTC")
    except Exception:  # noqa: BLE001 - not a Django project Lookout can read
        return None
    if not any(a == "django_celery_beat" or a.startswith("django_celery_beat.") for a in apps):
        return None
    return DjangoDatabase(django_url(database), f"Django settings {module}", naive_zone)


def django_url(database: dict[str, Any]) -> str:
    """A SQLAlchemy URL for one entry of Django's DATABASES."""
    backend = str(database.get("ENGINE", "")).rsplit(".", 1)[-1]
    driver = DJANGO_DRIVERS.get(backend)
    if driver is None:
        raise ValueError(f"Django database engine {database.get('ENGINE')!r} is not supported")
    if driver == "sqlite":
        return URL.create("sqlite", database=str(database.get("NAME"))).render_as_string(
            hide_password=False)
    port = database.get("PORT")
    # Driver options (sslmode, charset...) go along; Django's own keys would be refused.
    options = {k: str(v) for k, v in (database.get("OPTIONS") or {}).items()
               if isinstance(v, (str, int)) and not isinstance(v, bool)
               and k not in DJANGO_ONLY_OPTIONS}
    return URL.create(driver, username=database.get("USER") or None,
                      password=database.get("PASSWORD") or None,
                      host=database.get("HOST") or None,
                      port=int(port) if port else None,
                      database=database.get("NAME") or None,
                      query=options).render_as_string(hide_password=False)


class DjangoBeatSource:
    """Every PeriodicTask row, enabled or not, with its schedule in its own zone."""
    name = DJANGO

    def __init__(self, database: DjangoDatabase):
        self.database = database
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            url = make_url(self.database.url)
            args = {"connect_timeout": 3} if url.get_backend_name() in (
                "postgresql", "mysql") else {}
            self._engine = create_engine(url, pool_pre_ping=True, connect_args=args)
        return self._engine

    def read(self) -> SourceReport:
        report = SourceReport(DJANGO, f"{redact_url(self.database.url)} "
                                      f"(from {self.database.origin})")
        query = (select(task_table, interval_table.c.every, interval_table.c.period,
                        crontab_table.c.minute, crontab_table.c.hour,
                        crontab_table.c.day_of_week, crontab_table.c.day_of_month,
                        crontab_table.c.month_of_year, crontab_table.c.timezone,
                        solar_table.c.event, solar_table.c.latitude, solar_table.c.longitude,
                        clocked_table.c.clocked_time)
                 .outerjoin(interval_table).outerjoin(crontab_table)
                 .outerjoin(solar_table).outerjoin(clocked_table)
                 .order_by(task_table.c.name))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
        except Exception as exc:  # noqa: BLE001 - any driver's error: say it, show the rest
            report.error = f"cannot read django-celery-beat's tables: {_first_line(exc)}"
            return report
        report.entries = [self._entry(row) for row in rows]
        return report

    def _time(self, value: datetime | None) -> float | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timing.zone(self.database.naive_zone))
        return value.timestamp()

    def _entry(self, row) -> BeatEntry:
        entry = BeatEntry(
            DJANGO, row["name"], row["task"], None, enabled=bool(row["enabled"]),
            one_off=bool(row["one_off"]), start_time=self._time(row["start_time"]),
            expires_at=self._time(row["expires"]), last_run_at=self._time(row["last_run_at"]),
            total_run_count=row["total_run_count"], changed_at=self._time(row["date_changed"]),
            description=row["description"] or "", can_toggle=True)
        try:
            entry.args = json.loads(row["args"] or "[]")
            entry.kwargs = json.loads(row["kwargs"] or "{}")
            headers = json.loads(row["headers"] or "{}")
        except ValueError as exc:
            entry.error = f"args, kwargs or headers are not JSON ({exc}); beat disables it"
            headers = {}
        entry.options = {k: row[k] for k in ("queue", "exchange", "routing_key", "priority")
                         if row[k] not in (None, "")}
        if row["expire_seconds"]:
            entry.options["expires"] = row["expire_seconds"]
        entry.options["headers"] = {**headers, "periodic_task_name": row["name"]}
        try:
            entry.timing = self._timing(row)
        except Exception as exc:  # noqa: BLE001 - a bad crontab field, an unknown zone
            entry.error = f"cannot read its schedule: {exc}"
        return entry

    def _timing(self, row) -> timing.Timing:
        if row["interval_id"] is not None:
            return timing.Interval(row["every"] * PERIOD_SECONDS[row["period"]])
        if row["crontab_id"] is not None:
            return timing.Cron.parse(row["minute"], row["hour"], row["day_of_week"],
                                     row["day_of_month"], row["month_of_year"],
                                     row["timezone"] or "UTC")
        if row["solar_id"] is not None:
            return timing.Solar(row["event"], float(row["latitude"]), float(row["longitude"]))
        if row["clocked_id"] is not None:
            return timing.Clocked(self._time(row["clocked_time"]))
        raise ValueError("no schedule set")

    def set_enabled(self, name: str, enabled: bool, now: float) -> bool:
        """Enable or disable one entry as the admin does; False if there is no such entry."""
        stamp = datetime.fromtimestamp(now, timezone.utc)
        if self.engine.dialect.name != "postgresql":  # naive columns hold UTC (USE_TZ)
            stamp = stamp.astimezone(timing.zone(self.database.naive_zone)).replace(tzinfo=None)
        values: dict[str, Any] = {"enabled": enabled, "date_changed": stamp}
        if not enabled:
            values["last_run_at"] = None
        with self.engine.begin() as conn:
            changed = conn.execute(update(task_table).where(task_table.c.name == name)
                                   .values(**values)).rowcount
            if not changed:
                return False
            marked = conn.execute(update(changes_table).where(changes_table.c.ident == 1)
                                  .values(last_update=stamp)).rowcount
            if not marked:
                conn.execute(insert(changes_table).values(ident=1, last_update=stamp))
        return True

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
