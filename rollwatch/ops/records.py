"""What ``rollwatch tail`` shows: control-plane records parsed, filtered and rendered.

Pure functions over bytes, so the formatting is tested without a broker and the tail
loop stays a thin reader. A record that does not decode is shown, not skipped: a
malformed command on the control topic is exactly what an SRE needs to see.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias

import orjson
import typer

from rollwatch.commands import ControlAck, RollbackCommand, decode_ack, decode_command, rfc3339
from rollwatch.errors import ContractError

__all__ = [
    "ROLES",
    "RecordKind",
    "Role",
    "TailFilter",
    "TailRecord",
    "format_line",
    "format_number",
    "parse_record",
    "record_json",
]

Role: TypeAlias = Literal["control", "acks", "deadletter"]
RecordKind: TypeAlias = Literal["command", "ack", "deadletter", "invalid"]
ROLES: Final[tuple[Role, ...]] = ("control", "acks", "deadletter")

# Colours by what the action does to users: red takes behaviour back, yellow slows the
# rollout, green widens it, cyan is a drill (no real traffic moves).
_ACTION_COLOURS: Final[dict[str, str]] = {
    "reduce_rollout": "yellow",
    "freeze_rollout": "yellow",
    "promote": "green",
    "drill": "cyan",
    "drill_restore": "cyan",
}
_ACK_COLOURS: Final[dict[str, str]] = {"applied": "green", "refused": "red", "duplicate": "bright_black"}
_KIND_TAGS: Final[dict[str, str]] = {"command": "CMD", "ack": "ACK", "deadletter": "DLQ", "invalid": "BAD"}


@dataclass(frozen=True, slots=True)
class TailRecord:
    """One message of a control-plane topic, decoded as far as it goes."""

    role: Role
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    kind: RecordKind
    command: RollbackCommand | None = None
    ack: ControlAck | None = None
    deadletter: Mapping[str, Any] | None = None
    error: str | None = None
    raw: bytes = b""

    @property
    def workflow(self) -> str | None:
        """The workflow the record is about; the message key when the body does not say."""
        if self.command is not None:
            return self.command.workflow
        if self.ack is not None and self.ack.workflow:
            return self.ack.workflow
        return self.key

    @property
    def moment(self) -> datetime:
        """When it happened: issue, apply or rejection time, else the broker timestamp."""
        if self.command is not None:
            return self.command.issued_at
        if self.ack is not None:
            return self.ack.applied_at
        at = self.deadletter.get("at") if self.deadletter else None
        if isinstance(at, str):
            try:
                return datetime.fromisoformat(at.replace("Z", "+00:00"))
            except ValueError:
                pass
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)


def parse_record(
    role: Role, topic: str, partition: int, offset: int, timestamp_ms: int, key: bytes | None, value: bytes | None
) -> TailRecord:
    """Decode one message of ``role``'s topic; anything undecodable becomes an ``invalid`` record."""
    text_key = key.decode("utf-8", "replace") if key is not None else None
    base: dict[str, Any] = {
        "role": role,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp_ms": timestamp_ms,
        "key": text_key,
        "raw": value or b"",
    }
    if not value:
        return TailRecord(kind="invalid", error="empty message", **base)
    try:
        if role == "control":
            return TailRecord(kind="command", command=decode_command(value), **base)
        if role == "acks":
            return TailRecord(kind="ack", ack=decode_ack(value), **base)
        doc = orjson.loads(value)
    except ContractError as exc:
        return TailRecord(kind="invalid", error=str(exc), **base)
    except orjson.JSONDecodeError as exc:
        return TailRecord(kind="invalid", error=f"not JSON: {exc}", **base)
    if not isinstance(doc, dict):
        return TailRecord(kind="invalid", error="dead letter is not a JSON object", **base)
    return TailRecord(kind="deadletter", deadletter=doc, **base)


@dataclass(slots=True)
class TailFilter:
    """Which records to show.

    ``actions`` selects commands; an ack is shown with an action filter only when its
    command was shown (acks do not name the action), and dead letters, which are not
    commands, are hidden by it.
    """

    workflows: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    _shown: set[str] = field(default_factory=set)

    def accept(self, record: TailRecord) -> bool:
        if self.workflows and record.workflow not in self.workflows:
            return False
        if record.command is not None:
            if self.actions and record.command.action not in self.actions:
                return False
            self._shown.add(record.command.command_id)
            return True
        if not self.actions:
            return True
        return record.ack is not None and record.ack.command_id in self._shown


def format_number(value: float | None) -> str:
    """A gate value for people: ``30000`` rather than ``3e+04``, four significant digits below 1,000."""
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _reason_line(doc: Mapping[str, Any]) -> str:
    """``field: problem`` once: a reason built from a ContractError already starts with its field."""
    field_path = doc.get("field") or ""
    reason = str(doc.get("reason") or "")
    if field_path and reason.startswith(f"{field_path}: "):
        reason = reason[len(field_path) + 2 :]
    return f"{field_path or '-'}: {reason}"


def _flags(flags: Mapping[str, Any]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    return " ".join(f"{name}={show(value)}" for name, value in flags.items())


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _join(parts: Iterable[str]) -> str:
    return "  ".join(part for part in parts if part)


def format_line(record: TailRecord, *, color: bool) -> str:
    """One line per record; ``color`` adds ANSI styles (only for a terminal)."""

    def style(text: str, **kwargs: Any) -> str:
        return typer.style(text, **kwargs) if color else text

    head = [style(_clock(record.moment), dim=True), style(_KIND_TAGS[record.kind], bold=True)]
    where = record.workflow or "-"
    if record.command is not None:
        cmd = record.command
        reason = cmd.reason
        target = f"{where}/{cmd.segment}" if cmd.segment else where
        colour = _ACTION_COLOURS.get(cmd.action, "red")
        observed = style(format_number(reason.observed), fg=colour, bold=True)
        control = f"control {format_number(reason.control)}, " if reason.control is not None else ""
        body = [
            style(target, bold=True),
            style(cmd.action, fg=colour, bold=True),
            f"gate {reason.gate}",
            f"{reason.metric} {observed} vs {format_number(reason.threshold)} ({control}{reason.window})",
            f"by {cmd.issued_by}",
            f"-> {_flags(cmd.flags)}",
            style(f"{cmd.ticket.id} r{cmd.ticket.revision} {cmd.command_id}", dim=True),
        ]
    elif record.ack is not None:
        ack = record.ack
        body = [
            style(where, bold=True),
            style(ack.status, fg=_ACK_COLOURS[ack.status], bold=True),
            f"by {ack.consumer}",
            f"command {ack.command_id}",
            ack.detail or "",
        ]
    elif record.deadletter is not None:
        doc = record.deadletter
        source = doc.get("source") if isinstance(doc.get("source"), dict) else {}
        origin = f"from {source.get('topic')}[{source.get('partition')}]@{source.get('offset')}" if source else ""
        body = [
            style(where, bold=True),
            style("rejected", fg="magenta", bold=True),
            _reason_line(doc),
            origin,
        ]
    else:
        body = [
            style(where, bold=True),
            style(f"undecodable on {record.topic}[{record.partition}]@{record.offset}", fg="red", bold=True),
            record.error or "",
        ]
    return _join([*head, *body])


def record_json(record: TailRecord) -> dict[str, Any]:
    """The machine-readable form of a record: position, kind and the decoded body."""
    out: dict[str, Any] = {
        "kind": record.kind,
        "role": record.role,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": rfc3339(datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)),
        "workflow": record.workflow,
    }
    if record.command is not None:
        out["command"] = record.command.model_dump(mode="json")
    elif record.ack is not None:
        out["ack"] = record.ack.model_dump(mode="json")
    elif record.deadletter is not None:
        out["deadletter"] = dict(record.deadletter)
    else:
        out["error"] = record.error
        out["raw"] = record.raw.decode("utf-8", "replace")
    return out
