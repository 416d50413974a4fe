"""The failed-login throttle is one limit for every web process: it lives in the store.

Two app instances on one store stand for two gunicorn instances; the guesser spreads
attempts over both and over many addresses. Runs on SQLite and PostgreSQL.
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from helpers.control import PASSWORD, app_with_users, csrf_from
from lookout.core.store.models import LoginFailure
from lookout.dashboard.auth.throttle import ACCOUNT_MAX_FAILURES, LOGIN_MAX_FAILURES


@pytest.fixture
def processes(database_url, redis_broker):
    from helpers.apps import build_app

    first = app_with_users(database_url, redis_broker)  # creates the users
    second = build_app(database_url, broker_url=redis_broker, secret_key="test-secret",
                       auth=True)
    yield first, second
    for app in (first, second):
        app.extensions["lookout.engine"].dispose()


def attempt(app, username: str, password: str, address: str):
    client = app.test_client()
    environ = {"REMOTE_ADDR": address}
    token = csrf_from(client.get("/login", environ_base=environ).get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token}, environ_base=environ)


def test_one_account_guessed_from_many_addresses_through_two_processes_is_locked(processes):
    first, second = processes
    for i in range(ACCOUNT_MAX_FAILURES):  # never more than 2 per address: no address limit
        response = attempt((first, second)[i % 2], "ada", "guess", f"10.0.{i // 2}.1")
        assert response.status_code == 401
    for app in processes:  # both processes refuse, even the right password, from anywhere
        refused = attempt(app, "ada", PASSWORD, "10.9.9.9")
        assert refused.status_code == 429
        assert "too many failed logins for this account" in refused.get_data(as_text=True)
    # Other accounts are untouched.
    assert attempt(second, "otto", PASSWORD, "10.9.9.9").status_code == 302


def test_one_address_is_limited_across_processes_and_a_login_clears_only_its_account(
        processes):
    first, second = processes
    for i in range(LOGIN_MAX_FAILURES - 1):
        assert attempt((first, second)[i % 2], f"nobody{i}", "x", "10.1.1.1").status_code == 401
    assert attempt(first, "otto", PASSWORD, "10.1.1.1").status_code == 302
    assert attempt(second, "vic", "wrong", "10.1.1.1").status_code == 401  # the 10th
    refused = attempt(second, "vic", PASSWORD, "10.1.1.1")
    assert refused.status_code == 429
    assert "from this address" in refused.get_data(as_text=True)
    assert attempt(first, "vic", PASSWORD, "10.2.2.2").status_code == 302  # elsewhere: fine
    engine = first.extensions["lookout.engine"]
    with engine.connect() as conn:
        keys = set(conn.scalars(select(LoginFailure.key)))
        count = conn.scalar(select(func.count()).select_from(LoginFailure))
    assert "user:vic" not in keys  # the right password cleared the account's failures
    assert "addr:10.1.1.1" in keys and count == LOGIN_MAX_FAILURES + LOGIN_MAX_FAILURES - 1
