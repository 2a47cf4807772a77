"""Rollback commands and control acknowledgements v1: the records behind
``schemas/rollback-command.v1.json`` and ``schemas/control-ack.v1.json``.

Commands are rare (a handful per incident) and cross a trust boundary (flag stores
act on them), so they are pydantic models in strict mode rather than hand-tuned
parsers: correctness and precise errors matter more here than microseconds. The JSON
Schemas stay the contract; ``tests/test_contract_commands.py`` proves both sides
accept and reject the same documents.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired, TypeAlias

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
)
from typing_extensions import TypedDict

from rollwatch.errors import ContractError
from rollwatch.tickets.catalogue import ACTION_TYPES, ActionType, Role

__all__ = [
    "ACTIONS",
    "FLAG_NAMES",
    "MANUAL_ACTIONS",
    "ManualAction",
    "Action",
    "AckStatus",
    "ControlAck",
    "CustomerMessage",
    "Evidence",
    "Flags",
    "Reason",
    "RollbackCommand",
    "Signature",
    "TicketRef",
    "decode_ack",
    "decode_command",
    "encode_ack",
    "encode_command",
    "rfc3339",
]

Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Text = Annotated[str, StringConstraints(max_length=4096)]


def _whole(value: Any) -> Any:
    """JSON Schema's ``integer`` admits 1.0; strict pydantic does not. Agree with the schema."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def rfc3339(moment: datetime) -> str:
    """The one timestamp form rollwatch writes: UTC with ``Z``, lossless (microseconds when present)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _absent(value: object) -> bool:
    return value is None


Count = Annotated[int, BeforeValidator(_whole), Field(ge=0)]
Timestamp = Annotated[AwareDatetime, PlainSerializer(rfc3339, return_type=str)]

ManualAction: TypeAlias = Literal["abort", "pause", "resume", "undo"]
"""Actions only a person issues (``rollwatch abort|pause|resume|undo``; see :mod:`rollwatch.ops.manual`)."""
MANUAL_ACTIONS: tuple[str, ...] = ("abort", "pause", "resume", "undo")
Action: TypeAlias = Literal[ActionType, "rollback", "promote", "drill", "drill_restore", ManualAction]
"""A ticket's action types, plus the ones only the control plane issues."""
ACTIONS: tuple[str, ...] = (*ACTION_TYPES, "rollback", "promote", "drill", "drill_restore", *MANUAL_ACTIONS)
AckStatus: TypeAlias = Literal["applied", "refused", "duplicate"]

Flags = TypedDict(
    "Flags",
    {
        "ai.route.provider": NotRequired[Id],
        "ai.route.mode": NotRequired[Literal["sync", "async", "batch"]],
        "ai.prompt.version": NotRequired[Id],
        "ai.tools.enabled": NotRequired[bool],
        "ai.action.mode": NotRequired[Literal["auto", "draft", "queued", "review", "disabled"]],
        "ai.rollout.percent": NotRequired[Annotated[float, Field(ge=0, le=100)]],
    },
)
Flags.__pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[attr-defined]
FLAG_NAMES: tuple[str, ...] = tuple(Flags.__annotations__)


class _Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Reason(_Record):
    """Why: the gate that fired and the numbers behind it, so nobody has to reconstruct them."""

    gate: Id
    metric: Id
    observed: float | None
    threshold: float | None
    control: float | None = None
    window: Id
    samples: dict[str, Count]
    detail: Text | None = None


class Evidence(_Record):
    """What an SRE opens first: offending traces and events, bounded in size."""

    trace_ids: Annotated[list[Id], Field(max_length=100)]
    event_ids: Annotated[list[Id], Field(max_length=100)]
    attachments: Annotated[list[Id], Field(max_length=20)] | None = None


class TicketRef(_Record):
    """The release ticket (and its revision) whose gates and authority produced the command."""

    id: Id
    revision: Count


class CustomerMessage(_Record):
    key: Id
    text: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class Signature(_Record):
    """Over the RFC 8785 form of the command without this field (see :mod:`rollwatch.trust`).

    ``canon`` is absent only on commands signed by rollwatch 0.1 (the legacy form).
    """

    alg: Literal["hmac-sha256", "ed25519"]
    key_id: Id
    canon: Literal["rfc8785"] | None = None
    value: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class RollbackCommand(_Record):
    """One decision for flag stores and gateways: set these flags for this workflow (and segment)."""

    command_id: Id
    issued_at: Timestamp
    workflow: Id
    segment: Id | None = None
    action: Action
    flags: Annotated[Flags, Field(min_length=1)]
    reason: Reason
    evidence: Evidence
    issued_by: Id
    ticket: TicketRef
    customer_message: CustomerMessage | None = None
    expires_at: Timestamp | None = None
    # Written only when set, so commands without them keep the bytes (and signatures) of before.
    acting_as: Role | None = Field(None, exclude_if=_absent)
    """The ticket role a person acts in (``--as``); consumers count only that role's grant."""
    approves: Id | None = Field(None, exclude_if=_absent)
    """The id of the escalated decision a person's command carries out (``rollwatch approve``)."""
    signature: Signature | None = None


class ControlAck(_Record):
    """A consumer's answer to one command: applied, refused (with why) or a duplicate it ignored."""

    command_id: Id
    consumer: Id
    applied_at: Timestamp
    workflow: Id | None = None
    status: AckStatus
    detail: Text | None = None


def _decode(model: type[_Record], raw: bytes | str) -> Any:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ContractError(field, first["msg"]) from None


def decode_command(raw: bytes | str) -> RollbackCommand:
    """Parse and validate a control-topic message; raises :class:`ContractError` naming the field."""
    result: RollbackCommand = _decode(RollbackCommand, raw)
    return result


def decode_ack(raw: bytes | str) -> ControlAck:
    result: ControlAck = _decode(ControlAck, raw)
    return result


def encode_command(command: RollbackCommand) -> bytes:
    return orjson.dumps(command.model_dump(mode="json"))


def encode_ack(ack: ControlAck) -> bytes:
    return orjson.dumps(ack.model_dump(mode="json"))
