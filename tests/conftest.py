"""Shared fixtures: one real embedded broker per test session, reached over TCP."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import settings as hypothesis_settings

from rollwatch.broker import EmbeddedBroker, free_port
from rollwatch.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """A Tansu broker started for this session on a free port and stopped after it."""
    with EmbeddedBroker(port=free_port()) as started:
        yield started


@pytest.fixture
def kafka_settings(broker: EmbeddedBroker) -> Settings:
    """Settings pointing at the session broker, with topic names private to the test.

    They carry a fresh HMAC key (development mode: trusted for commands, tickets and flag
    documents), because every consumer refuses unsigned tickets.
    """
    tag = uuid.uuid4().hex[:8]
    names: dict[str, Any] = {
        f"topic_{role}": f"t{tag}.{role}"
        for role in ("telemetry", "control", "acks", "deadletter", "releases", "flags")
    }
    return load_settings(
        None,
        bootstrap_servers=broker.bootstrap_servers,
        telemetry_partitions=4,
        control_partitions=2,
        signing_key_id="test-key",
        signing_key=secrets.token_urlsafe(32),
        **names,
    )


def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator for one of the contracts in ``schemas/``, checking formats too."""
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


# A loaded CI machine must not turn a slow example into a failure: time lives in bench/.
hypothesis_settings.register_profile("rollwatch", deadline=None, print_blob=True)
hypothesis_settings.load_profile("rollwatch")
