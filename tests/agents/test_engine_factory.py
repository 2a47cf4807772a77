"""The worker's engine factory signs what it emits with the configured key."""

from __future__ import annotations

import pytest

from rollwatch.agents.engine_factory import production_factory
from rollwatch.events import CallEvent
from rollwatch.settings import load_settings
from rollwatch.signing import keyring_from_settings, verify_command
from tests.gates.conftest import EXAMPLE

T0 = 1_763_900_000_000


def schema_regression() -> list[CallEvent]:
    events = []
    for i in range(400):
        candidate = i % 2 == 0
        events.append(
            CallEvent(
                f"e{i}",
                T0 + i * 100,
                "support-summary",
                "support-summary/candidate" if candidate else "support-summary/stable",
                800.0,
                "ok",
                not (candidate and i % 10 == 0),
                False,
                True,
                0.01,
                trace_id=f"t{i}",
            )
        )
    return events


def test_production_factory_signs_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLWATCH_SIGNING_KEY_ID", "worker-1")
    monkeypatch.setenv("ROLLWATCH_SIGNING_KEY", "hmac-sha256:test-secret-not-for-production")
    engine = production_factory().new("support-summary")
    engine.set_ticket(EXAMPLE.read_bytes())
    engine.apply(schema_regression())
    emitted = engine.evaluate(T0 + 400 * 100)
    assert [e.command.reason.gate for e in emitted] == ["json-failures"]
    command = emitted[0].command
    assert command.signature is not None and command.signature.key_id == "worker-1"
    verify_command(command, keyring_from_settings(load_settings()))  # raises if forged


def test_without_a_key_the_factory_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROLLWATCH_SIGNING_KEY", raising=False)
    with pytest.warns(UserWarning, match="unsigned"):
        factory = production_factory()
    assert factory.signer is None
