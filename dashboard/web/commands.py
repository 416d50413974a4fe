"""Command-line plumbing shared by the commands that work on the store alone
(`lookout users|tokens|collectors ...`, `lookout db upgrade`)."""
from __future__ import annotations

import functools
from typing import Any, Callable

import click

from lookout.core.config import Settings


def one_line_errors(*kinds: type[Exception],
                    usage: bool = True) -> Callable[[Callable], Callable]:
    """A command decorator: an exception of `kinds` becomes one clear line, not a traceback.
    `usage`: a mistake in the command's options (exit status 2), else a refusal (1). Only
    the kinds the command itself raises for the user's input: any other, a bug's KeyError
    among them, keeps its traceback."""
    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except kinds as exc:
                message = str(exc.args[0] if exc.args else exc)
                raise (click.UsageError if usage else click.ClickException)(message) from None
        return wrapper
    return decorate


def store_options(func: Callable) -> Callable:
    """`--database` and `--data-dir`, as `lookout run` takes them, resolved into the
    command's `database_url`: the store made by `lookout run --data-dir X` is the one
    `lookout users add --data-dir X` changes (without it, users went to the default one)."""
    @functools.wraps(func)
    def wrapper(*args: Any, data_dir: str | None = None, **kwargs: Any) -> Any:
        try:
            settings = Settings.load(database_url=kwargs.get("database_url"), data_dir=data_dir)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        kwargs["database_url"] = settings.database_url
        return func(*args, **kwargs)
    wrapper = click.option("--data-dir", "data_dir",
                           help="Data folder of the default SQLite store (as for lookout "
                                "run; LOOKOUT_DATA_DIR).")(wrapper)
    return click.option("--database", "database_url",
                        help="SQLAlchemy URL of the store (as for lookout run; "
                             "LOOKOUT_DATABASE_URL).")(wrapper)
