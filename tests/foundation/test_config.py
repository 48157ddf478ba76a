"""Settings: defaults with no configuration, TOML and environment, and clear errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from common.config import ConfigError, Settings
from common.secrets import generate_key


def test_embedded_defaults_need_no_configuration(instance_path: Path) -> None:
    settings = Settings.load(environ={}, instance_path=instance_path)
    assert settings.database_url == f"sqlite:///{instance_path / 'synchronizer.db'}"
    assert settings.queue_url == f"sqlite:///{instance_path / 'queue.db'}"
    assert set(settings.generated) == {"SECRET_KEY", "ENCRYPTION_KEYS"}
    # Generated secrets are kept, owner-only, and reused on the next start.
    for name in ("secret_key", "encryption_key"):
        mode = (instance_path / name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
    again = Settings.load(environ={}, instance_path=instance_path)
    assert again.secret_key == settings.secret_key
    assert again.encryption_keys == settings.encryption_keys


def test_generated_secrets_are_warned_about(
    instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Settings.load(environ={}, instance_path=instance_path).warn_about_generated_secrets()
    assert "production must set SYNCHRONIZER_SECRET_KEY" in caplog.text
    assert "production must set SYNCHRONIZER_ENCRYPTION_KEYS" in caplog.text


def test_environment_overrides_toml(tmp_path: Path, instance_path: Path) -> None:
    key_a, key_b = generate_key(), generate_key()
    config = tmp_path / "synchronizer.toml"
    config.write_text(
        f'instance_path = "{instance_path}"\n'
        'database_url = "postgresql://u:p@db.internal/sync"\n'
        f'encryption_keys = ["{key_a}", "{key_b}"]\n'
        "check_timeout_seconds = 12\n"
        'outbound_ip = "203.0.113.7"\n'
    )
    settings = Settings.load(
        config,
        environ={
            "SYNCHRONIZER_CHECK_TIMEOUT_SECONDS": "25",
            "SYNCHRONIZER_QUEUE_URL": "redis://127.0.0.1:6379/0",
            "SYNCHRONIZER_CHECK_ALLOW_PRIVATE_NETWORKS": "yes",
        },
    )
    assert settings.database_backend == "postgresql"
    assert settings.encryption_keys == (key_a, key_b)
    assert settings.check_timeout_seconds == 25.0
    assert settings.queue_url.startswith("redis://")
    assert settings.check_allow_private_networks is True
    assert settings.outbound_ip == "203.0.113.7"
    assert settings.generated == ("SECRET_KEY",)


def test_config_file_from_environment_and_synchronizer_table(
    tmp_path: Path, instance_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[synchronizer]\ninstance_path = "{instance_path}"\nlog_format = "json"\n')
    settings = Settings.load(environ={"SYNCHRONIZER_CONFIG": str(config)})
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("environ", "setting", "expected"),
    [
        ({"SYNCHRONIZER_DATABASE_URL": "mysql://x/y"}, "DATABASE_URL", "postgresql://"),
        ({"SYNCHRONIZER_DATABASE_URL": "not a url"}, "DATABASE_URL", "sqlite:///PATH"),
        ({"SYNCHRONIZER_ENCRYPTION_KEYS": "abc"}, "ENCRYPTION_KEYS", "Fernet keys"),
        ({"SYNCHRONIZER_QUEUE_URL": "amqp://x"}, "QUEUE_URL", "redis://"),
        ({"SYNCHRONIZER_SECRET_KEY": "short"}, "SECRET_KEY", "at least 16"),
        ({"SYNCHRONIZER_OUTBOUND_IP": "300.1.1.1"}, "OUTBOUND_IP", "IPv4 or IPv6"),
        ({"SYNCHRONIZER_SMTP_PORT": "abc"}, "SMTP_PORT", "a number"),
        ({"SYNCHRONIZER_CHECK_ALLOW_PRIVATE_NETWORKS": "maybe"}, "CHECK_ALLOW", "true or false"),
        ({"SYNCHRONIZER_CHECK_DNS_SERVERS": "dns.example"}, "CHECK_DNS_SERVERS", "IP[:PORT]"),
        ({"SYNCHRONIZER_PUBLIC_URL": "ftp://x"}, "PUBLIC_URL", "http(s)://"),
        ({"SYNCHRONIZER_LOG_FORMAT": "xml"}, "LOG_FORMAT", "'text' or 'json'"),
    ],
)
def test_bad_settings_name_the_setting(
    instance_path: Path, environ: dict[str, str], setting: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(environ=environ, instance_path=instance_path)
    message = str(caught.value)
    assert setting in message
    assert expected in message
    assert "\n" not in message


def test_unknown_setting_in_file_is_refused(tmp_path: Path, instance_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'instance_path = "{instance_path}"\ndatabse_url = "sqlite://"\n')
    with pytest.raises(ConfigError, match="DATABSE_URL"):
        Settings.load(config, environ={})


def test_unwritable_instance_folder_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="INSTANCE_PATH"):
        Settings.load(environ={}, instance_path=blocker / "instance")
