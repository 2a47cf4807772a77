"""Settings: defaults for the embedded setup, environment, files, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollwatch.errors import ConfigError
from rollwatch.settings import load_settings


def test_defaults_fit_the_embedded_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROLLWATCH_CONFIG", raising=False)
    settings = load_settings()
    assert settings.bootstrap_servers == "127.0.0.1:9092" and settings.broker_port == 9092
    assert set(settings.topics()) == {"telemetry", "control", "acks", "deadletter", "releases", "flags"}


def test_environment_beats_file_and_file_beats_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "rollwatch.toml"
    config.write_text('topic_control = "from-file"\ntopic_acks = "acks-file"\n')
    monkeypatch.setenv("ROLLWATCH_TOPIC_CONTROL", "from-env")
    settings = load_settings(config)
    assert settings.topic_control == "from-env"
    assert settings.topic_acks == "acks-file"


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.broker_port = 1  # type: ignore[misc]


def test_secrets_are_masked_when_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLWATCH_SIGNING_KEY", "s3cret-signing-key")
    monkeypatch.setenv("ROLLWATCH_SASL_PASSWORD", "hunter2")
    settings = load_settings()
    assert "s3cret" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert settings.signing_key is not None and settings.signing_key.get_secret_value() == "s3cret-signing-key"


def test_bad_file_value_names_file_field_and_expectation(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("broker_port = 70000\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    message = str(err.value)
    assert str(config) in message and "'broker_port'" in message and "less than or equal to 65535" in message


def test_unknown_file_field_and_broken_toml(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text('topic_telemtry = "x"\n')
    with pytest.raises(ConfigError, match=r"typo.toml: field 'topic_telemtry': not a rollwatch setting"):
        load_settings(config)
    config.write_text("broker_port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "missing.toml")


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLWATCH_TELEMETRY_PARTITIONS", "many")
    with pytest.raises(
        ConfigError, match="environment variable ROLLWATCH_TELEMETRY_PARTITIONS: field 'telemetry_partitions'"
    ):
        load_settings()
