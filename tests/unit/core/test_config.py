import pytest

from lookout.core.config import Settings, parse_duration, redact_url


def test_env_then_overrides():
    env = {"LOOKOUT_BROKER_URL": "amqp://u:p@h//", "LOOKOUT_RETENTION": "2d",
           "LOOKOUT_MAX_TASKS": "10", "LOOKOUT_AUTH": "false"}
    settings = Settings.load(env, max_tasks=5, database_url=None)
    assert settings.broker_url == "amqp://u:p@h//"
    assert settings.retention == 2 * 86400
    assert settings.max_tasks == 5
    assert settings.auth is False
    assert settings.database_url == f"sqlite:///{settings.data_folder() / 'lookout.db'}"


def test_the_default_store_lives_in_a_per_user_data_folder(monkeypatch, tmp_path):
    """Not in whatever folder the command ran from (issue 12)."""
    monkeypatch.delenv("LOOKOUT_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Settings.load({}).database_url == \
        f"sqlite:///{tmp_path}/.local/share/lookout/lookout.db"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings.load({}).data_folder() == tmp_path / "xdg" / "lookout"
    settings = Settings.load({"LOOKOUT_DATA_DIR": str(tmp_path / "srv")})
    assert settings.database_url == f"sqlite:///{tmp_path}/srv/lookout.db"
    explicit = Settings.load({"LOOKOUT_DATA_DIR": "/x", "LOOKOUT_DATABASE_URL": "sqlite:///a.db"})
    assert explicit.database_url == "sqlite:///a.db"


@pytest.mark.parametrize("raw,seconds", [("30s", 30), ("15m", 900), ("1.5h", 5400), (7, 7)])
def test_durations(raw, seconds):
    assert parse_duration(raw) == seconds


def test_bad_values_name_their_source():
    with pytest.raises(ValueError, match="LOOKOUT_RETENTION"):
        Settings.load({"LOOKOUT_RETENTION": "forever"})
    with pytest.raises(ValueError, match="--max-tasks"):
        Settings.load({}, max_tasks="many")


def test_redact_url():
    assert redact_url("amqp://guest:secret@host:5672//") == "amqp://guest:***@host:5672//"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("url, shown", [
    ("amqp://guest:p@ss/w@rd@rabbit:5672/vh", "amqp://guest:***@rabbit:5672/vh"),
    ("redis://:s3cr@t@redis:6379/0", "redis://:***@redis:6379/0"),
    ("postgresql+psycopg://app:a:b@c@db/lookout?sslmode=require",
     "postgresql+psycopg://app:***@db/lookout?sslmode=require"),
    ("redis://user@host:6379/0", "redis://user@host:6379/0"),
    ("sqlite:////var/lib/lookout/look@out.db", "sqlite:////var/lib/lookout/look@out.db"),
    ("redis://h:6379/0?client_name=a@b", "redis://h:6379/0?client_name=a@b"),
])
def test_redact_url_hides_every_password_shape(url, shown):
    assert redact_url(url) == shown
    secret_parts = {"p@ss/w@rd", "s3cr@t", "a:b@c"}
    assert not any(part in redact_url(url) for part in secret_parts)
