"""`lookout users passwd|role`: change a user from the command line, ending their sessions."""
from __future__ import annotations

import re

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


def test_list_disable_enable_remove_and_tokens(sqlite_url):
    from click.testing import CliRunner

    from lookout.dashboard.cli import lookout

    runner = CliRunner()

    def run(*args, stdin=None):
        result = runner.invoke(lookout, [*args, "--database", sqlite_url], input=stdin)
        assert result.exit_code == 0, result.output
        return result.output

    assert "no users in" in run("users", "list")
    run("users", "add", "ada", "--role", "admin", "--password-stdin",
        stdin="long enough password\n")
    run("users", "disable", "ada")
    assert "disabled" in run("users", "list")
    run("users", "enable", "ada")
    assert "active" in run("users", "list")
    secret = run("tokens", "add", "ci", "--role", "viewer").strip()
    listed = run("tokens", "list")
    assert "ci" in listed and secret[:10] in listed and "active" in listed
    token_id = listed.split()[0]
    assert f"token {token_id} revoked" in run("tokens", "revoke", token_id)
    assert "revoked" in run("tokens", "list")
    again = runner.invoke(lookout, ["tokens", "revoke", token_id, "--database", sqlite_url])
    assert again.exit_code == 2 and f"no active token {token_id}" in again.output
    run("users", "remove", "ada")
    assert "no users in" in run("users", "list")


def test_a_first_run_says_how_to_create_the_first_user(make_app, sqlite_url, caplog):
    app = make_app(sqlite_url, auth=True)
    page = app.test_client().get("/login").get_data(as_text=True)
    assert "No user exists yet" in page and "lookout users add NAME --role admin" in page
    assert sqlite_url.replace("sqlite:///", "") in page
    assert any("no user can log in yet" in r.getMessage() for r in caplog.records)
    app.extensions["lookout.accounts"].add_user("ada", "long enough pw", "admin")
    assert "No user exists yet" not in app.test_client().get("/login").get_data(as_text=True)


def test_accounts_and_db_commands_take_the_data_dir_as_lookout_run_does(tmp_path, monkeypatch):
    """`lookout run --data-dir X` keeps its store in X; the account commands given the
    same --data-dir change that store, not the default one."""
    from lookout.core.config import Settings
    from lookout.core.store.db import make_engine
    from lookout.dashboard.auth.accounts import AccountStore

    monkeypatch.delenv("LOOKOUT_DATABASE_URL", raising=False)
    monkeypatch.setenv("LOOKOUT_DATA_DIR", str(tmp_path / "default"))  # not this one
    folder = tmp_path / "mine"
    runner = CliRunner()
    result = runner.invoke(lookout, ["db", "upgrade", "--data-dir", str(folder)])
    assert result.exit_code == 0 and str(folder / "lookout.db") in result.output
    result = runner.invoke(lookout, ["users", "add", "ada", "--role", "admin",
                                     "--password-stdin", "--data-dir", str(folder)],
                           input="correct horse battery staple\n")
    assert result.exit_code == 0, result.output
    assert Settings.load(data_dir=str(folder)).database_url.endswith("/mine/lookout.db")
    engine = make_engine(Settings.load(data_dir=str(folder)).database_url)
    try:
        assert [u["username"] for u in AccountStore(engine).list_users()] == ["ada"]
    finally:
        engine.dispose()
    assert not (tmp_path / "default").exists()
    listed = runner.invoke(lookout, ["users", "list", "--data-dir", str(folder)])
    assert listed.exit_code == 0 and "ada" in listed.output


def test_a_store_that_does_not_answer_is_one_line_and_exit_status_1(tmp_path):
    """Any command needing the store: the driver's own reason, no traceback (an on-call
    reading a process manager's log wants the line, not 40). The web server is not one:
    it starts and says the store is down (integration/test_web_store_down.py)."""
    from helpers.browser import free_port

    refused = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    runner = CliRunner()
    for command in (["users", "list"], ["db", "upgrade"]):
        result = runner.invoke(lookout, [*command, "--database", refused])
        assert result.exit_code == 1, (command, result.output)
        assert result.output.startswith("Error: store unavailable: connection failed"), \
            result.output
        assert "Connection refused" in result.output and "Traceback" not in result.output


def test_each_command_offers_the_options_it_uses():
    """The web process keeps no history of its own: no retention or collector name there."""
    runner = CliRunner()
    collector_only = ("--name", "--retention", "--max-tasks", "--rollup-retention",
                      "--max-field-size")
    helps = {command: runner.invoke(lookout, [command, "--help"]).output
             for command in ("collect", "run", "web")}
    for option in collector_only:
        assert option in helps["collect"] and option in helps["run"], option
        assert option not in helps["web"], option
    assert "--message-queue" in helps["web"] and "--port" not in helps["collect"]


def test_collectors_list_and_forget_one_that_will_not_come_back(sqlite_url):
    """A SIGKILLed collector that is never restarted kept /healthz at 503 until someone
    deleted its row in SQL; `lookout collectors forget` does it, and only for a dead one."""
    import time

    from helpers.factories import set_collector_status
    from lookout.core.store.db import make_engine, upgrade

    from lookout.collectors.lease import JobLease

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        set_collector_status(engine, "alive")
        set_collector_status(engine, "gone", updated_at=time.time() - 600)
        # The dead one still holds a job for a while; another one of a similar name too.
        assert JobLease(engine, "queues", 600, time.time, "gone").acquire()
        assert JobLease(engine, "retention", 600, time.time, "gone_too").acquire()
    finally:
        engine.dispose()
    runner = CliRunner()

    def run(*args):
        return runner.invoke(lookout, ["collectors", *args, "--database", sqlite_url])

    listed = run("list")
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[0]: line for line in listed.output.splitlines()}
    assert " up, connected " in lines["alive"] and "down: status not updated" in lines["gone"]
    running = run("forget", "alive")
    assert running.exit_code == 1 and "it is running; stop it first" in running.output
    # A collector killed a moment ago looks the same: the refusal says when to try again.
    assert re.search(r"if it was just killed, try again in \d+s", running.output)
    unknown = run("forget", "nobody")
    assert unknown.exit_code == 1 and "no collector named 'nobody'" in unknown.output
    forgotten = run("forget", "gone")
    assert forgotten.exit_code == 0 and "forgot collector gone" in forgotten.output
    assert [line.split()[0] for line in run("list").output.splitlines()] == ["alive"]
    engine = make_engine(sqlite_url)
    try:  # its job is free for another collector now; the other name's is not touched
        assert JobLease(engine, "queues", 600, time.time, "alive").acquire()
        assert not JobLease(engine, "retention", 600, time.time, "alive").acquire()
    finally:
        engine.dispose()


def test_db_upgrade_says_what_it_did(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    runner = CliRunner()
    first = runner.invoke(lookout, ["db", "upgrade", "--database", url])
    assert first.exit_code == 0, first.output
    assert "schema upgraded on" in first.output and "none (empty store) ->" in first.output
    again = runner.invoke(lookout, ["db", "upgrade", "--database", url])
    assert again.exit_code == 0 and "schema already up to date" in again.output


def test_a_public_host_is_refused_before_the_store_is_touched(tmp_path, caplog):
    """`lookout web --host 0.0.0.0` ran the schema upgrade, then refused (a trial)."""
    url = f"sqlite:///{tmp_path / 'untouched.db'}"
    result = CliRunner().invoke(lookout, ["web", "--host", "0.0.0.0", "--database", url])
    assert result.exit_code == 2
    assert "only listens on loopback" in caplog.text and "gunicorn" in caplog.text
    assert not (tmp_path / "untouched.db").exists()


def test_an_unknown_broker_transport_is_a_usage_error_before_any_thread(tmp_path):
    """The transport is resolved before the collector's threads start: a typo in the
    scheme is one line, not a receiver thread that dies ("ended unexpectedly")."""
    import threading

    before = {t.name for t in threading.enumerate()}
    result = CliRunner().invoke(lookout, ["collect", "--broker", "fooo://host/0",
                                          "--database", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 2, result.output
    assert "broker fooo://host/0: No such transport: fooo" in result.output
    assert not {t.name for t in threading.enumerate()
                if t.name.startswith("lookout")} - before


def test_log_times_carry_their_utc_offset():
    """`-A proj` makes Django's TIME_ZONE the process's zone: a bare 04:11 in the log read
    as an hour off the screen's 03:11 (a trial). Each line now says its offset."""
    import logging

    from lookout.dashboard.cli import _ZonedFormatter

    record = logging.LogRecord("lookout", logging.INFO, __file__, 1, "hello", None, None)
    line = _ZonedFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s").format(record)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}[+-]\d{4} INFO lookout: hello$",
                    line), line
