"""The `lookout` command: collect, web, run, db upgrade.

Every option also reads a LOOKOUT_* variable (see lookout.core.config.Settings); a flag given
on the command line wins. The same group is mounted as `celery lookout` (celery_command.py),
where `-A proj` supplies the broker URL and the app.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
import time
from typing import Any, Callable

import click

from lookout.core.config import Settings, redact_url
from lookout.dashboard.app_binding import bind_celery_app
from lookout.dashboard.web.commands import one_line_errors, store_options

log = logging.getLogger("lookout")


def settings_options(func: Callable) -> Callable:
    """Options shared by every command that needs the broker and the database."""
    options = [
        click.option("--broker", "broker_url", help="Broker URL (LOOKOUT_BROKER_URL)."),
        click.option("--database", "database_url",
                     help="SQLAlchemy URL of the store (LOOKOUT_DATABASE_URL; default: "
                          "lookout.db in the data folder)."),
        click.option("--data-dir", "data_dir",
                     help="Folder for Lookout's own files: the default SQLite store, the "
                          "collector's spill file (LOOKOUT_DATA_DIR; default "
                          "~/.local/share/lookout)."),
        click.option("--message-queue",
                     help="Redis URL linking collector and web processes for live updates."),
        click.option("-A", "--app", "celery_app",
                     help="Celery app, module or module:attr (LOOKOUT_CELERY_APP)."),
        click.option("-v", "--verbose", is_flag=True, help="Debug logging."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def collector_options(func: Callable) -> Callable:
    """Options of the commands that run a collector (`collect`, `run`)."""
    options = [
        click.option("--name", "collector_name",
                     help="This collector's name, its own on this machine and store: two "
                          "collectors side by side need two names (LOOKOUT_COLLECTOR_NAME; "
                          "default 'default')."),
        click.option("--retention", help="Keep raw task history this long, e.g. 7d."),
        click.option("--max-tasks", type=int, help="Keep at most this many task rows."),
        click.option("--rollup-retention", help="Keep per-minute rollups this long."),
        click.option("--max-field-size", type=int, help="Longest text field kept."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def web_options(func: Callable) -> Callable:
    options = [
        click.option("--host", help="Address to listen on (default 127.0.0.1)."),
        click.option("--port", type=int, help="Port to listen on (default 5555)."),
        click.option("--no-auth", "no_auth", is_flag=True, default=None,
                     help="Disable login. For local use only."),
        click.option("--read-only", "read_only", is_flag=True, default=None,
                     help="Refuse every control action."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class _ZonedFormatter(logging.Formatter):
    """Local time with its UTC offset: `-A proj` loads Django settings, whose TIME_ZONE
    becomes the process's zone, and a trial read 04:11 in the log beside 03:11 on screen."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return (super().formatTime(record, datefmt)
                + time.strftime("%z", self.converter(record.created)))


def configure_logging(level: int = logging.INFO) -> None:
    """Lookout's log lines to stderr with time and level; nothing changes where logging is
    configured already (basicConfig leaves a root logger with handlers alone)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_ZonedFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def build_settings(ctx: click.Context, **values: Any) -> Settings:
    """Merge CLI values over LOOKOUT_* env, then bind the Celery app of -A (either kind)."""
    verbose = values.pop("verbose", False)
    configure_logging(logging.DEBUG if verbose else logging.INFO)
    if not verbose:  # keep "Running upgrade ..." lines, drop Alembic's start-up chatter
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    no_auth = values.pop("no_auth", None)
    if no_auth:
        values["auth"] = False
    settings = Settings.load(**values)
    broker_explicit = bool(values.get("broker_url") or os.environ.get("LOOKOUT_BROKER_URL"))
    bind_celery_app(settings, celery_cli_app(ctx), broker_explicit)
    return settings


def celery_cli_app(ctx: click.Context) -> Any:
    """The app of `celery -A proj lookout ...`, which Celery puts on the root context."""
    parent = ctx.find_root().obj
    return getattr(parent, "app", None) if parent is not None else None


# Configuration mistakes become one clear line and exit status 2, not a traceback.
handle_errors = one_line_errors(ValueError)


class LookoutGroup(click.Group):
    """Every command, `celery -A proj lookout ...` too: a store that does not answer, a
    store URL that cannot be opened here (its driver not installed), or a collector name
    already running here, is one line and exit status 1, not a traceback on the
    terminal."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from sqlalchemy.exc import OperationalError

            from lookout.collectors.spill import SpillBusy
            from lookout.collectors.status import NameInUse
            from lookout.core.store.db import StoreURLError, error_line

            if isinstance(exc, (SpillBusy, NameInUse, StoreURLError)):  # they say it all
                raise click.ClickException(str(exc)) from None
            if not isinstance(exc, OperationalError):
                raise
            raise click.ClickException(
                f"store unavailable: {error_line(exc)} (this command needs it; "
                "`lookout collect`, `web` and `run` start without it and wait)") from None


@click.group(cls=LookoutGroup,
             help="Lookout: live monitoring, durable history and control for Celery.")
def lookout() -> None:
    pass


@lookout.command(help="Consume Celery events and record them in the store.")
@settings_options
@collector_options
@click.pass_context
@handle_errors
def collect(ctx: click.Context, **values: Any) -> None:
    from sqlalchemy.exc import OperationalError

    from lookout.collectors.service import run_collector
    from lookout.core.store.db import error_line, upgrade

    settings = build_settings(ctx, **values)
    try:
        upgrade(settings.database_url)
    except OperationalError as exc:
        # On Redis every event published while no collector listens is gone: start
        # anyway, hold events in memory then the spill file, and let the writer upgrade
        # the schema once the store answers (retried like a write).
        log.error("store %s unavailable at start (%s): collecting anyway; events wait "
                  "and are written once it answers", redact_url(settings.database_url),
                  error_line(exc, 200))
        settings.extra["store_upgrade"] = functools.partial(upgrade, settings.database_url)
    log.info("collecting from %s into %s", redact_url(settings.broker_url),
             redact_url(settings.database_url))
    sys.exit(run_collector(settings))


@lookout.command(help="Serve the dashboard and API (collector running elsewhere).")
@settings_options
@web_options
@click.pass_context
@handle_errors
def web(ctx: click.Context, **values: Any) -> None:
    from lookout.dashboard.server import prepare_store, refuses_host, serve

    settings = build_settings(ctx, **values)
    if refuses_host(settings):
        sys.exit(2)
    prepare_store(settings)  # a store away is served as such, not an exit
    sys.exit(serve(settings, with_collector=False))


@lookout.command(help="Collector and web server together in one process.")
@settings_options
@collector_options
@web_options
@click.pass_context
@handle_errors
def run(ctx: click.Context, **values: Any) -> None:
    from lookout.dashboard.server import prepare_store, refuses_host, serve

    settings = build_settings(ctx, **values)
    if refuses_host(settings):
        sys.exit(2)
    prepare_store(settings)
    sys.exit(serve(settings, with_collector=True))


@lookout.group(help="Database schema management.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply pending schema migrations (history is kept).")
@store_options
@handle_errors
def db_upgrade(database_url: str) -> None:
    from lookout.core.store.db import schema_revision, upgrade

    before = schema_revision(database_url)
    upgrade(database_url)
    after = schema_revision(database_url)
    where = redact_url(database_url)
    if before == after:
        click.echo(f"schema already up to date on {where} (revision {after})")
    else:
        click.echo(f"schema upgraded on {where}: revision {before or 'none (empty store)'} "
                   f"-> {after}")


def _add_store_commands() -> None:
    """`lookout users|tokens ...` live with the accounts they manage, `lookout collectors
    ...` with the health report."""
    from lookout.dashboard.auth.commands import tokens, users
    from lookout.dashboard.health.commands import collectors

    lookout.add_command(users)
    lookout.add_command(tokens)
    lookout.add_command(collectors)


_add_store_commands()


def main() -> None:
    lookout(prog_name="lookout")


if __name__ == "__main__":
    main()
