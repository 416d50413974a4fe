"""`lookout collectors ...`: the collectors a store has heard from, and forgetting one.

A collector that crashed and will not come back (a decommissioned machine, a renamed
collector) keeps its status row, and /healthz says it is down until that row goes: the
only cleanup there is, done here rather than in SQL by hand.
"""
from __future__ import annotations

import contextlib

import click

from lookout.dashboard.web.commands import one_line_errors, store_options


@contextlib.contextmanager
def _health(database_url: str):
    from lookout.core.store.db import make_engine
    from lookout.dashboard.health.service import HealthCheck

    engine = make_engine(database_url)
    try:
        yield HealthCheck(engine)
    finally:
        engine.dispose()


# Unknown names and running collectors become one clear line and exit status 1.
_errors = one_line_errors(LookupError, ValueError, usage=False)


@click.group(help="The collectors writing this store (as /healthz lists them).")
def collectors() -> None:
    pass


@collectors.command("list", help="Every collector that reported, its state and jobs.")
@store_options
def collectors_list(database_url: str) -> None:
    with _health(database_url) as health:
        report = health.check()
    if not report["collectors"]:
        click.echo("no collector has reported to this store")
    jobs: dict[str, list[str]] = {}
    for job in report.get("jobs", []):
        if job["held"]:
            jobs.setdefault(job["collector"], []).append(job["job"])
    width = max([24, *(len(c["name"]) for c in report["collectors"])])
    for c in report["collectors"]:
        # "connected": the word the rolling restart (README) says to wait for.
        state = ("stopped" if c["stopped"] else f"down: {c['problem']}" if c["problem"]
                 else "up, connected")
        click.echo(f"{c['name']:<{width}} {state:<40} last report {c['status_age']:.0f}s ago"
                   f"  jobs: {', '.join(sorted(jobs.get(c['name'], []))) or '-'}")
        if c["warning"]:
            click.echo(f"{'':<{width}} warning: {c['warning']}")


@collectors.command("forget", help="Remove a collector that will not come back, so "
                    "/healthz stops reporting it down.")
@click.argument("name")
@store_options
@_errors
def collectors_forget(name: str, database_url: str) -> None:
    with _health(database_url) as health:
        health.forget(name)
    click.echo(f"forgot collector {name}")
