"""Rollback commands and acks: the pydantic records agree with their JSON Schemas."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from rollwatch.commands import (
    FLAG_NAMES,
    ControlAck,
    Evidence,
    Reason,
    RollbackCommand,
    TicketRef,
    decode_ack,
    decode_command,
    encode_ack,
    encode_command,
)
from rollwatch.errors import ContractError
from tests.conftest import schema_validator

COMMAND_SCHEMA = schema_validator("rollback-command.v1.json")
ACK_SCHEMA = schema_validator("control-ack.v1.json")

COMMAND: dict[str, Any] = {
    "command_id": "cmd-7f3a",
    "issued_at": "2026-11-23T10:15:00.250Z",
    "workflow": "support-summary",
    "action": "restore_route_and_prompt",
    "flags": {"ai.route.provider": "anthropic/sonnet", "ai.prompt.version": "p41"},
    "reason": {
        "gate": "json-failures",
        "metric": "schema_failure_rate",
        "observed": 0.015,
        "threshold": 0.01,
        "control": 0.001,
        "window": "last 200 calls",
        "samples": {"candidate": 200, "control": 3800},
    },
    "evidence": {"trace_ids": ["t1", "t2"], "event_ids": ["e1"]},
    "issued_by": "rollwatch-worker",
    "ticket": {"id": "REL-142", "revision": 3},
}
ACK: dict[str, Any] = {
    "command_id": "cmd-7f3a",
    "consumer": "flagstore-1",
    "applied_at": "2026-11-23T10:15:01Z",
    "status": "applied",
}


def change(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    *parents, last = path.split("/")
    node = out
    for part in parents:
        node = node[part]
    if value is ...:
        node.pop(last)
    else:
        node[last] = value
    return out


def python_accepts(decode: Any, doc: Any) -> bool:
    try:
        decode(orjson.dumps(doc))
    except ContractError:
        return False
    return True


VALID_COMMANDS = [
    COMMAND,
    change(COMMAND, "segment", "eu-enterprise"),
    change(COMMAND, "flags", {"ai.tools.enabled": False}),
    change(COMMAND, "flags", {"ai.action.mode": "draft", "ai.rollout.percent": 0, "ai.route.mode": "async"}),
    change(COMMAND, "reason/observed", None),
    change(COMMAND, "reason/samples", {"candidate": 200.0}),
    change(COMMAND, "customer_message", {"key": "review_mode", "text": "This request will be reviewed."}),
    change(COMMAND, "expires_at", "2026-11-23T11:15:00+00:00"),
    change(COMMAND, "signature", {"alg": "hmac-sha256", "key_id": "k1", "value": "abc"}),
    change(COMMAND, "evidence/attachments", ["parser_logs"]),
    change(change(COMMAND, "action", "abort"), "acting_as", "incident_commander"),
    change(change(COMMAND, "action", "undo"), "acting_as", None),
    change(COMMAND, "approves", "worker-escalate-123"),
    change(COMMAND, "action", "pause"),
    change(COMMAND, "action", "resume"),
]
INVALID_COMMANDS = [
    change(COMMAND, "command_id", ...),
    change(COMMAND, "command_id", ""),
    change(COMMAND, "issued_at", "yesterday"),
    change(COMMAND, "issued_at", "2026-11-23T10:15:00"),
    change(COMMAND, "issued_at", 1763900000),
    change(COMMAND, "action", "nuke"),
    change(COMMAND, "flags", {}),
    change(COMMAND, "flags", {"ai.other": 1}),
    change(COMMAND, "flags", {"ai.tools.enabled": "false"}),
    change(COMMAND, "flags", {"ai.rollout.percent": 101}),
    change(COMMAND, "flags", {"ai.rollout.percent": -1}),
    change(COMMAND, "flags", {"ai.action.mode": "yolo"}),
    change(COMMAND, "flags", {"ai.route.provider": None}),
    change(COMMAND, "reason/gate", ...),
    change(COMMAND, "reason/samples", {"candidate": -1}),
    change(COMMAND, "reason/samples", {"candidate": 1.5}),
    change(COMMAND, "reason/observed", "high"),
    change(COMMAND, "evidence/trace_ids", ["t"] * 101),
    change(COMMAND, "evidence", {"trace_ids": []}),
    change(COMMAND, "ticket/revision", -1),
    change(COMMAND, "issued_by", 7),
    change(COMMAND, "signature", {"alg": "md5", "key_id": "k", "value": "v"}),
    change(COMMAND, "extra", True),
    change(COMMAND, "acting_as", "janitor"),
    change(COMMAND, "acting_as", 3),
    change(COMMAND, "approves", ""),
    change(COMMAND, "action", "approve"),
]


@pytest.mark.parametrize("doc", VALID_COMMANDS)
def test_commands_both_accept(doc: dict[str, Any]) -> None:
    assert COMMAND_SCHEMA.is_valid(doc)
    assert python_accepts(decode_command, doc)


@pytest.mark.parametrize("doc", INVALID_COMMANDS)
def test_commands_both_reject(doc: dict[str, Any]) -> None:
    assert not COMMAND_SCHEMA.is_valid(doc)
    assert not python_accepts(decode_command, doc)


@pytest.mark.parametrize(
    ("doc", "valid"),
    [
        (ACK, True),
        (change(ACK, "status", "refused") | {"detail": "bad signature"}, True),
        (change(ACK, "workflow", "wf"), True),
        (change(ACK, "status", "ok"), False),
        (change(ACK, "consumer", ...), False),
        (change(ACK, "applied_at", "now"), False),
    ],
)
def test_acks_agree(doc: dict[str, Any], valid: bool) -> None:
    assert ACK_SCHEMA.is_valid(doc) is valid
    assert python_accepts(decode_ack, doc) is valid


def test_encoded_command_validates_and_round_trips() -> None:
    command = RollbackCommand(
        command_id="c1",
        issued_at=datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC),
        workflow="w",
        action="disable_tools",
        flags={"ai.tools.enabled": False},
        reason=Reason(gate="g", metric="m", observed=1.0, threshold=0.5, window="15m", samples={"candidate": 9}),
        evidence=Evidence(trace_ids=[], event_ids=["e"]),
        issued_by="rollwatch-worker",
        ticket=TicketRef(id="T", revision=0),
    )
    raw = encode_command(command)
    assert COMMAND_SCHEMA.is_valid(orjson.loads(raw))
    assert decode_command(raw) == command
    ack = ControlAck(command_id="c1", consumer="gw", applied_at=command.issued_at, status="duplicate")
    assert decode_ack(encode_ack(ack)) == ack


def test_error_names_the_field() -> None:
    with pytest.raises(ContractError) as err:
        decode_command(orjson.dumps(change(COMMAND, "flags", {"ai.rollout.percent": 250})))
    assert err.value.field == "flags.ai.rollout.percent"


def test_flag_names_are_the_six_of_the_seed() -> None:
    assert set(FLAG_NAMES) == {
        "ai.route.provider",
        "ai.route.mode",
        "ai.prompt.version",
        "ai.tools.enabled",
        "ai.action.mode",
        "ai.rollout.percent",
    }


def test_actions_match_the_schema_enum() -> None:
    import json

    from rollwatch.commands import ACTIONS
    from tests.conftest import SCHEMAS

    schema = json.loads((SCHEMAS / "rollback-command.v1.json").read_text())
    assert sorted(ACTIONS) == sorted(schema["properties"]["action"]["enum"])
