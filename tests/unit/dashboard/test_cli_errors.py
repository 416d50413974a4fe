"""`lookout ...` given a broker or store it cannot use here: one line naming the URL and
the reason, never a traceback."""
from __future__ import annotations

import importlib.util
import threading

import pytest
from click.testing import CliRunner

from lookout.dashboard.cli import lookout

STORE_COMMANDS = (["web", "--no-auth"], ["collect"], ["run", "--no-auth"], ["db", "upgrade"],
                  ["users", "list"], ["collectors", "list"])


def lookout_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("lookout")}


@pytest.mark.skipif(importlib.util.find_spec("confluent_kafka") is not None,
                    reason="kombu's kafka transport loads when confluent_kafka is installed")
def test_a_broker_transport_that_fails_to_import_is_a_usage_error(tmp_path):
    """kombu's kafka transport without confluent_kafka dies of a NameError, not an
    ImportError: it was a full traceback, before any thread started all the same."""
    before = lookout_threads()
    result = CliRunner().invoke(lookout, ["collect", "--broker", "kafka://u:secret@x/0",
                                          "--database", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error == ["Error: broker kafka://u:***@x/0: kombu's 'kafka' transport failed to "
                     "load (NameError: name 'KafkaException' is not defined); is the "
                     "client library it needs installed?"], result.output
    assert "secret" not in result.output
    assert not lookout_threads() - before


@pytest.mark.skipif(importlib.util.find_spec("MySQLdb") is not None,
                    reason="needs a Python without the MySQLdb driver")
@pytest.mark.parametrize("command", STORE_COMMANDS, ids=" ".join)
def test_a_missing_store_driver_is_one_line_naming_the_supported_stores(command):
    result = CliRunner().invoke(lookout, [*command, "--database", "mysql://u:secret@db/x"])
    assert result.exit_code == 1, result.output
    assert result.output == (
        "Error: store driver missing for mysql://u:***@db/x: No module named 'MySQLdb' "
        "(Lookout supports sqlite:// and postgresql://)\n")


@pytest.mark.parametrize("url, reason", [
    ("nosuchdb://db/x", "store nosuchdb://db/x: SQLAlchemy knows no database 'nosuchdb'"),
    ("lookout.db", "store URL 'lookout.db' is not a database URL"),
])
def test_a_store_url_sqlalchemy_cannot_open_is_one_line(url, reason):
    for command in (["db", "upgrade"], ["users", "list"]):
        result = CliRunner().invoke(lookout, [*command, "--database", url])
        assert result.exit_code == 1, result.output
        assert result.output == f"Error: {reason} (Lookout supports sqlite:// and postgresql://)\n"


@pytest.mark.parametrize("name, reason", [
    ("w" * 79, "a collector name has at most 64 characters, not 79"),
    ("  ", "a collector name cannot be empty"),
])
def test_a_collector_name_the_store_cannot_keep_is_refused_at_start(tmp_path, name, reason):
    """A 79-character `--name "$(hostname)"` collected, but its status row failed every
    second and it never showed in /healthz."""
    for command in (["collect"], ["run", "--no-auth"]):
        result = CliRunner().invoke(lookout, [*command, "--name", name, "--database",
                                              f"sqlite:///{tmp_path / 'x.db'}"])
        assert result.exit_code != 0, result.output
        assert f"--name: {reason}" in result.output, result.output
        assert "Traceback" not in result.output
