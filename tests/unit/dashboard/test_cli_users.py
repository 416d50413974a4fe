"""`lookout users passwd|role`: change a user from the command line, ending their sessions."""
from __future__ import annotations

from click.testing import CliRunner

from helpers.control import PASSWORD, app_with_users, csrf_from, login
from lookout.dashboard.cli import lookout


def test_passwd_and_role_change_the_user_and_end_their_sessions(sqlite_url, redis_broker):
    app = app_with_users(sqlite_url, redis_broker)
    try:
        client = app.test_client()
        login(client, "vic")
        assert client.get("/api/v1/me").get_json()["role"] == "viewer"
        runner = CliRunner()
        result = runner.invoke(lookout, ["users", "role", "vic", "operator",
                                         "--database", sqlite_url])
        assert result.exit_code == 0 and "vic is now operator" in result.output
        assert client.get("/api/v1/me").status_code == 401  # the old session is over
        login(client, "vic")
        assert client.get("/api/v1/me").get_json()["role"] == "operator"
        result = runner.invoke(lookout, ["users", "passwd", "vic", "--password-stdin",
                                         "--database", sqlite_url],
                               input="a brand new passphrase\n")
        assert result.exit_code == 0, result.output
        assert client.get("/api/v1/me").status_code == 401
        fresh = app.test_client()
        csrf = csrf_from(fresh.get("/login").get_data(as_text=True))
        refused = fresh.post("/login", data={"username": "vic", "password": PASSWORD,
                                             "csrf_token": csrf})
        assert refused.status_code == 401
        login(fresh, "vic", "a brand new passphrase")
        assert fresh.get("/api/v1/me").get_json()["name"] == "vic"
    finally:
        app.extensions["lookout.engine"].dispose()


def test_unknown_users_and_short_passwords_are_clear_errors(sqlite_url):
    runner = CliRunner()
    result = runner.invoke(lookout, ["users", "role", "nobody", "admin",
                                     "--database", sqlite_url])
    assert result.exit_code == 2 and "no user 'nobody'" in result.output
    result = runner.invoke(lookout, ["users", "passwd", "nobody", "--password-stdin",
                                     "--database", sqlite_url], input="short\n")
    assert result.exit_code == 2 and "at least 8 characters" in result.output
