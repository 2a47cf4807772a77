"""Settings: one frozen object, from ``ROLLWATCH_*`` variables and an optional TOML file.

Defaults fit the embedded broker, so ``rollwatch demo`` and the tests need no setup.
A wrong value must never surface as a stack trace deep in the worker: ``load_settings``
turns pydantic's errors into a :class:`~rollwatch.errors.ConfigError` that names the
file (or environment variable), the field and what was expected. Secrets are
``SecretStr`` so printing the settings masks them.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from rollwatch.errors import ConfigError

__all__ = ["ENV_PREFIX", "Settings", "load_settings"]

ENV_PREFIX = "ROLLWATCH_"
Port = Annotated[int, Field(ge=1, le=65535)]
Topic = Annotated[str, Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")]
AttributeNames = Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)]
"""Span or resource attribute names, tried in order."""


class Settings(BaseSettings):
    """Everything a rollwatch process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    broker_host: str = Field("127.0.0.1", description="Where `rollwatch broker` listens.")
    broker_port: Port = Field(9092, description="Port of the embedded broker.")

    topic_telemetry: Topic = "rollwatch.telemetry"
    topic_control: Topic = "rollwatch.control"
    topic_acks: Topic = "rollwatch.acks"
    topic_deadletter: Topic = "rollwatch.deadletter"
    topic_releases: Topic = "rollwatch.releases"
    topic_flags: Topic = "rollwatch.flags"
    telemetry_partitions: Annotated[int, Field(ge=1, le=1024)] = 8
    control_partitions: Annotated[int, Field(ge=1, le=1024)] = 4

    # OTLP ingest (rollwatch.otlp): the defaults are rollwatch.otlp.names.SpanNames' (a test keeps them equal).
    topic_otlp: Topic | None = Field(
        None, description="Optional topic of OTLP trace batches from the Collector's Kafka exporter (GenAI spans)."
    )
    otlp_workflow_attributes: AttributeNames = ("rollwatch.workflow", "traceloop.workflow.name", "service.name")
    otlp_route_attributes: AttributeNames = ("rollwatch.route",)
    otlp_arm_attributes: AttributeNames = ("rollwatch.arm",)
    otlp_segment_attributes: AttributeNames = ("rollwatch.segment",)
    otlp_prompt_version_attributes: AttributeNames = ("rollwatch.prompt_version",)
    otlp_operations: AttributeNames = Field(
        ("chat", "text_completion", "generate_content"), description="gen_ai.operation.name values that are calls."
    )

    web_host: str = Field("127.0.0.1", description="Where the worker's HTTP endpoint (status, /metrics) listens.")
    web_port: Port = Field(6066, description="The worker's HTTP port (status and /metrics).")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    signing_key_id: str = "rollwatch-dev"
    signing_key: SecretStr | None = Field(
        None, description="This process's signing key: 'ed25519:<base64 seed>' or an HMAC-SHA256 secret."
    )
    principal: str = Field(
        "rollwatch-worker",
        min_length=1,
        description="Who this process signs as when the keyring does not list its key (development mode).",
    )
    keyring_file: Path | None = Field(
        None, description="JSON keyring (schemas/keyring.v1.json): the principals, their keys, what each may sign."
    )
    verify_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Older form: key_id -> key trusted to sign commands as the principal named key_id.",
    )
    legacy_command_signatures: bool = Field(
        True, description="Accept commands signed in the pre-RFC 8785 form (for one release); false refuses them."
    )
    command_max_skew_s: Annotated[float, Field(gt=0)] = Field(
        300.0, description="How far a command's issued_at may be from when it was sent or from this clock's future."
    )
    command_max_age_s: Annotated[float, Field(gt=0)] = Field(
        3900.0, description="Oldest issued_at a consumer applies, and the longest life a command may give itself."
    )
    command_ack_deadline_s: Annotated[float, Field(gt=0)] = Field(
        10.0, description="Seconds a consumer has to apply a command before it counts as missed."
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Where the flag store materializes flags.")
    redis_prefix: str = Field("rollwatch:", description="Prefix of the flag store's Redis keys.")
    flagstore_host: str = Field("127.0.0.1", description="Where the flag store serves flags over HTTP.")
    flagstore_port: Port = Field(6067, description="The flag store's HTTP port (flags, audit, /metrics).")
    flagstore_audit_path: Path | None = Field(None, description="JSON-lines file the flag store appends audits to.")
    notify_slack_webhooks: list[str] = Field(
        default_factory=list,
        description="Slack-compatible incoming webhooks told of rollbacks, escalations, manual commands.",
    )
    notify_json_webhooks: list[str] = Field(
        default_factory=list, description="Webhooks given the same notices as a generic JSON body."
    )
    notify_retries: Annotated[int, Field(ge=1, le=20)] = Field(4, description="Attempts per notice and webhook.")
    notify_timeout_s: Annotated[float, Field(gt=0)] = Field(5.0, description="Seconds per webhook attempt.")

    def topics(self) -> dict[str, str]:
        """Role -> topic name, for creating and listing them."""
        return {
            "telemetry": self.topic_telemetry,
            "control": self.topic_control,
            "acks": self.topic_acks,
            "deadletter": self.topic_deadletter,
            "releases": self.topic_releases,
            "flags": self.topic_flags,
        } | ({"otlp": self.topic_otlp} if self.topic_otlp else {})


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from (lowest first) defaults, a TOML file, ``ROLLWATCH_*`` variables, overrides.

    The file is ``config_file`` or ``$ROLLWATCH_CONFIG``; its keys are the field names.
    """
    env_file = os.environ.get(f"{ENV_PREFIX}CONFIG")
    path = config_file or (Path(env_file) if env_file else None)
    from_file: dict[str, Any] = {}
    if path is not None:
        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        unknown = sorted(set(from_file) - set(Settings.model_fields))
        if unknown:
            raise ConfigError(f"{path}: field {unknown[0]!r}: not a rollwatch setting")
    env_names = {name for name in Settings.model_fields if f"{ENV_PREFIX}{name.upper()}" in os.environ}
    # Environment beats the file: drop file values the environment overrides.
    init = {k: v for k, v in from_file.items() if k not in env_names} | overrides
    try:
        return Settings(**init)
    except SettingsError as exc:  # a complex value (a JSON object) that is not JSON
        match = re.search(r'field "(\w+)"', str(exc))
        field = match.group(1) if match else "?"
        raise ConfigError(
            f"environment variable {ENV_PREFIX}{field.upper()}: field {field!r}: expected JSON "
            f"(for example '{{\"key-id\": \"ed25519:...\"}}')"
        ) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        if field in overrides:
            source = "argument"
        elif field in init and path is not None:
            source = str(path)
        else:
            source = f"environment variable {ENV_PREFIX}{field.upper()}"
        raise ConfigError(f"{source}: field {field!r}: {err['msg']} (got {err.get('input')!r})") from None
