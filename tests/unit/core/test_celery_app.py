"""`-A proj` means the same everywhere: broker, how to reach it, timezone, beat schedule."""
from __future__ import annotations

import click
import pytest
from celery import Celery

from lookout.collectors.buffer import EventBuffer
from lookout.collectors.receiver import EventReceiver
from lookout.collectors.stats import CollectorStats
from lookout.core.celery_client import (
    REDIS_SOCKET_BOUNDS,
    PrivateCeleryApp,
    app_broker_conf,
    connection_options,
)
from lookout.core.config import Settings
from lookout.dashboard.cli import build_settings, lookout


def project_app() -> Celery:
    app = Celery("proj", broker="redis://broker.internal:6380/4", set_as_current=False)
    app.conf.update(broker_transport_options={"global_keyprefix": "proj:",
                                              "visibility_timeout": 7200},
                    broker_use_ssl={"ssl_cert_reqs": "required"},
                    timezone="Asia/Shanghai",
                    beat_schedule={"tick": {"task": "proj.tick", "schedule": 30.0}})
    return app


def test_the_apps_broker_and_connection_settings_are_taken():
    settings = Settings.load({})
    settings.use_celery_app(project_app(), broker_explicit=False)
    assert settings.broker_url == "redis://broker.internal:6380/4"
    assert settings.broker_conf["broker_transport_options"]["global_keyprefix"] == "proj:"
    assert settings.broker_conf["broker_use_ssl"] == {"ssl_cert_reqs": "required"}
    assert settings.timezone == "Asia/Shanghai"
    assert settings.extra["celery_app"].conf.beat_schedule["tick"]["task"] == "proj.tick"


def test_an_explicit_broker_wins_but_the_connection_settings_still_apply():
    settings = Settings.load({}, broker_url="redis://elsewhere:6379/0")
    settings.use_celery_app(project_app(), broker_explicit=True)
    assert settings.broker_url == "redis://elsewhere:6379/0"
    assert settings.broker_conf["broker_transport_options"]["visibility_timeout"] == 7200


def test_every_connection_lookout_makes_uses_them():
    settings = Settings.load({})
    settings.use_celery_app(project_app(), broker_explicit=False)
    options = connection_options(settings.broker_url, settings.broker_conf)
    assert options["transport_options"]["global_keyprefix"] == "proj:"
    assert options["ssl"] == {"ssl_cert_reqs": "required"}
    receiver = EventReceiver(settings, EventBuffer(), CollectorStats())
    connection = receiver._connection()
    assert connection.transport_options["global_keyprefix"] == "proj:"
    assert connection.ssl == {"ssl_cert_reqs": "required"}
    assert connection.hostname == "broker.internal" and connection.port == 6380
    private = PrivateCeleryApp(settings.broker_url, "probe",
                               broker_conf=settings.broker_conf).get()
    assert private.conf.broker_transport_options["global_keyprefix"] == "proj:"
    assert private.conf.timezone == "Asia/Shanghai"
    assert private.main == "probe"  # Lookout's own app, never the user's


def test_an_app_without_connection_settings_adds_nothing():
    bare = Celery("bare", broker="amqp://guest@rabbit//", set_as_current=False)
    conf = app_broker_conf(bare)
    assert not conf["broker_transport_options"] and not conf["broker_use_ssl"]
    assert connection_options(bare.conf.broker_url, conf) == {"transport_options": {}}


def test_every_redis_connection_has_bounded_sockets_unless_the_app_sets_its_own():
    """A silent Redis address must not block Lookout forever (test_collector_faults)."""
    options = connection_options("redis://127.0.0.1:6379/0", {})["transport_options"]
    assert options == REDIS_SOCKET_BOUNDS
    assert connection_options("rediss://h:6380/0", {})["transport_options"] == options
    assert connection_options("sentinel://h:26379", {})["transport_options"] == options
    own = {"broker_transport_options": {"socket_timeout": 30, "global_keyprefix": "p:"}}
    mixed = connection_options("redis://h:6379/0", own)["transport_options"]
    assert mixed["socket_timeout"] == 30 and mixed["global_keyprefix"] == "p:"
    assert mixed["socket_connect_timeout"] == REDIS_SOCKET_BOUNDS["socket_connect_timeout"]
    private = PrivateCeleryApp("redis://h:6379/0", "probe", broker_conf=own).get()
    assert private.conf.broker_transport_options["socket_timeout"] == 30
    assert private.conf.broker_transport_options["socket_connect_timeout"] == 5.0
    assert connection_options("amqp://guest@rabbit//", {}) == {"transport_options": {}}


@pytest.mark.parametrize("broker_flag, expected", [
    (None, "redis://127.0.0.1:6379/0"),  # helpers.sample_tasks's own default broker
    ("redis://flag.example:6379/9", "redis://flag.example:6379/9"),
])
def test_dash_a_on_the_lookout_command_loads_the_app(monkeypatch, broker_flag, expected):
    monkeypatch.delenv("LOOKOUT_BROKER_URL", raising=False)
    monkeypatch.delenv("LOOKOUT_TEST_BROKER", raising=False)
    ctx = click.Context(lookout)
    settings = build_settings(ctx, broker_url=broker_flag, celery_app="helpers.sample_tasks")
    assert settings.broker_url == expected
    assert settings.extra["celery_app"].main == "sample_tasks"


def test_lookout_broker_url_in_the_environment_wins_over_the_app(monkeypatch):
    monkeypatch.setenv("LOOKOUT_BROKER_URL", "redis://env.example:6379/2")
    settings = build_settings(click.Context(lookout), celery_app="helpers.sample_tasks")
    assert settings.broker_url == "redis://env.example:6379/2"


def test_an_app_that_cannot_be_loaded_is_one_clear_error():
    with pytest.raises(ValueError, match="cannot load Celery app 'no_such_project'"):
        build_settings(click.Context(lookout), celery_app="no_such_project")
