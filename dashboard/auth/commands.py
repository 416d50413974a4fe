"""`lookout users ...` and `lookout tokens ...`: accounts from the command line.

They work on the store alone (give the same --database as `lookout run`), so an admin
can always get in, or lock someone out, without a running web app. Every change that
takes a right away (password, role, disable, remove) ends the user's sessions at once.
"""
from __future__ import annotations

import contextlib
import sys
from datetime import datetime

import click

from lookout.core.config import redact_url
from lookout.dashboard.web.commands import one_line_errors, store_options


# Bad values and unknown names become one clear line and exit status 2.
_errors = one_line_errors(ValueError, LookupError)


@contextlib.contextmanager
def _accounts(database_url: str):
    """The accounts of the store `store_options` resolved."""
    from lookout.core.store.db import make_engine, upgrade
    from lookout.dashboard.auth.accounts import AccountStore

    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        yield AccountStore(engine)
    finally:
        engine.dispose()


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")


def _password(stdin: bool, prompt: str) -> str:
    return (sys.stdin.readline().rstrip("\n") if stdin else
            click.prompt(prompt, hide_input=True, confirmation_prompt=True))


@click.group(help="People who log in to the dashboard.")
def users() -> None:
    pass


@users.command("list", help="Every user, with role and state.")
@store_options
@_errors
def users_list(database_url: str) -> None:
    with _accounts(database_url) as accounts:
        rows = accounts.list_users()
    if not rows:
        click.echo(f"no users in {redact_url(database_url)}; add one with: "
                   "lookout users add NAME --role admin")
    for row in rows:
        state = "disabled" if row["disabled"] else "active"
        click.echo(f"{row['username']:<24} {row['role']:<9} {state:<9} "
                   f"since {_when(row['created_at'])}")


@users.command("add", help="Add a user with a role: viewer, operator or admin.")
@click.argument("username")
@click.option("--role", default="viewer", show_default=True,
              help="viewer (read), operator (controls), admin (also users and tokens).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@store_options
@_errors
def users_add(username: str, role: str, password_stdin: bool, database_url: str) -> None:
    password = _password(password_stdin, "Password")
    with _accounts(database_url) as accounts:
        accounts.add_user(username, password, role)
    click.echo(f"added {role} {username}")


@users.command("passwd", help="Set a user's password; ends all their sessions.")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@store_options
@_errors
def users_passwd(username: str, password_stdin: bool, database_url: str) -> None:
    password = _password(password_stdin, "New password")
    with _accounts(database_url) as accounts:
        accounts.set_password(username, password)
    click.echo(f"password of {username} changed; their sessions are ended")


@users.command("role", help="Change a user's role; ends all their sessions.")
@click.argument("username")
@click.argument("role", type=click.Choice(["viewer", "operator", "admin"]))
@store_options
@_errors
def users_role(username: str, role: str, database_url: str) -> None:
    with _accounts(database_url) as accounts:
        accounts.set_role(username, role)
    click.echo(f"{username} is now {role}; their sessions are ended")


@users.command("disable", help="Stop a user from logging in; ends their sessions now.")
@click.argument("username")
@store_options
@_errors
def users_disable(username: str, database_url: str) -> None:
    with _accounts(database_url) as accounts:
        accounts.set_disabled(username, True)
    click.echo(f"{username} is disabled; their sessions are ended")


@users.command("enable", help="Let a disabled user log in again.")
@click.argument("username")
@store_options
@_errors
def users_enable(username: str, database_url: str) -> None:
    with _accounts(database_url) as accounts:
        accounts.set_disabled(username, False)
    click.echo(f"{username} can log in again")


@users.command("remove", help="Delete a user (the audit trail keeps their name).")
@click.argument("username")
@store_options
@_errors
def users_remove(username: str, database_url: str) -> None:
    with _accounts(database_url) as accounts:
        accounts.remove_user(username)
    click.echo(f"removed {username}")


@users.command("token", help="Create an API token (shown once). `lookout tokens add` and "
               "`lookout users token` are the same command.")
@click.argument("name")
@click.option("--role", default="viewer", show_default=True, help="Role the token acts with.")
@store_options
@_errors
def users_token(name: str, role: str, database_url: str) -> None:
    with _accounts(database_url) as accounts:
        _, secret = accounts.add_token(name, role, created_by="cli")
    click.echo(secret)


@click.group(help="API tokens for scripts (Authorization: Bearer).")
def tokens() -> None:
    pass


tokens.add_command(users_token, "add")


@tokens.command("list", help="Every token: id, name, role, prefix, last use, revoked.")
@store_options
@_errors
def tokens_list(database_url: str) -> None:
    with _accounts(database_url) as accounts:
        rows = accounts.list_tokens()
    for row in rows:
        state = f"revoked {_when(row['revoked_at'])}" if row["revoked_at"] else "active"
        click.echo(f"{row['id']:>4} {row['name']:<24} {row['role']:<9} {row['prefix']}… "
                   f"last used {_when(row['last_used_at'])}  {state}")


@tokens.command("revoke", help="Revoke a token by id; live sockets using it are closed.")
@click.argument("token_id", type=int)
@store_options
@_errors
def tokens_revoke(token_id: int, database_url: str) -> None:
    with _accounts(database_url) as accounts:
        if not accounts.revoke_token(token_id):
            raise LookupError(f"no active token {token_id}")
    click.echo(f"token {token_id} revoked")
