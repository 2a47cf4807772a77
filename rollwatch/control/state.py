"""Materialized flags per workflow and segment, shared by the flag store and gateways.

Both consumers apply the same commands with the same rules, so they end in the same
state whatever order they start in. A workflow has a workflow-wide layer and one layer
per segment; a segment reads the workflow layer overlaid by its own. A workflow-wide
command also clears the flags it sets from every segment layer: "restore the route for
everyone" must reach a segment that was moved earlier, and last-writer-wins in control
topic order (commands are keyed by workflow, so one partition orders them) is the only
rule a person can predict during an incident.

The document written to the compacted flags topic records the control-topic position
of the last command applied and the recent command ids, so a restarted flag store is
idempotent across restarts and a gateway can tell which of two states is newer. It is
signed by the flag store's key (:mod:`rollwatch.trust`); readers verify it against their
keyring, because a forged document would otherwise set flags and erase the memory of
applied command ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeAlias

import orjson
from pydantic import TypeAdapter, ValidationError

from rollwatch.commands import Flags, RollbackCommand, rfc3339
from rollwatch.control.errors import StateFormatError
from rollwatch.trust import Keyring, SignatureError, SigningKey, sign_document, verify_document

__all__ = [
    "APPLIED_MEMORY",
    "FORMAT",
    "FlagBook",
    "FlagMap",
    "FlagValue",
    "WorkflowFlags",
    "decode_state",
    "verified_state",
]

FORMAT: Final = "rollwatch.flags/v1"
APPLIED_MEMORY: Final = 1000
"""Command ids remembered per workflow; older replays are caught by ``expires_at`` instead."""

FlagValue: TypeAlias = str | bool | float
FlagMap: TypeAlias = dict[str, FlagValue]
_FLAGS: Final = TypeAdapter(Flags)


def _flag_map(value: Any, where: str) -> FlagMap:
    try:
        checked: FlagMap = dict(_FLAGS.validate_python(value))  # type: ignore[arg-type]
    except ValidationError as exc:
        raise StateFormatError(f"{where}: {exc.errors()[0]['msg']}") from None
    return checked


@dataclass(slots=True)
class WorkflowFlags:
    """The flags in force for one workflow; ``version`` counts the commands applied."""

    workflow: str
    flags: FlagMap = field(default_factory=dict)
    segments: dict[str, FlagMap] = field(default_factory=dict)
    version: int = 0
    partition: int | None = None
    offset: int | None = None
    last_command_id: str | None = None
    updated_at: str | None = None
    applied: list[str] = field(default_factory=list)

    def effective(self, segment: str | None = None, base: Mapping[str, FlagValue] | None = None) -> FlagMap:
        """What a request in ``segment`` sees: ``base`` (the ticket's state), workflow layer, segment layer."""
        out: FlagMap = dict(base or {})
        out.update(self.flags)
        if segment is not None:
            out.update(self.segments.get(segment, {}))
        return out

    def apply(self, command: RollbackCommand, at: datetime, partition: int | None, offset: int | None) -> list[str]:
        """Apply ``command``'s flags; the command ids that fell out of the replay memory."""
        flags: FlagMap = dict(command.flags)  # type: ignore[arg-type]
        if command.segment is None:
            self.flags.update(flags)
            for name in list(self.segments):
                layer = self.segments[name]
                for flag in flags:
                    layer.pop(flag, None)
                if not layer:
                    del self.segments[name]
        else:
            self.segments.setdefault(command.segment, {}).update(flags)
        self.version += 1
        self.partition, self.offset = partition, offset
        self.last_command_id = command.command_id
        self.updated_at = rfc3339(at)
        self.applied.append(command.command_id)
        forgotten = self.applied[:-APPLIED_MEMORY]
        del self.applied[:-APPLIED_MEMORY]
        return forgotten

    def to_dict(
        self, base: Mapping[str, FlagValue] | None = None, ticket: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The flags document; ``in_force`` is what requests see (``base`` = the ticket's state
        under the command layers), so a consumer of the flags topic needs no other topic."""
        return {
            "format": FORMAT,
            "workflow": self.workflow,
            "flags": self.flags,
            "segments": self.segments,
            "version": self.version,
            "partition": self.partition,
            "offset": self.offset,
            "last_command_id": self.last_command_id,
            "updated_at": self.updated_at,
            "applied": self.applied,
            "in_force": {
                "flags": self.effective(None, base),
                "segments": {name: self.effective(name, base) for name in sorted(self.segments)},
            },
            "ticket": dict(ticket) if ticket is not None else None,
        }

    def to_json(
        self,
        key: SigningKey | None = None,
        base: Mapping[str, FlagValue] | None = None,
        ticket: Mapping[str, Any] | None = None,
    ) -> bytes:
        """The flags-topic document, signed by ``key`` (readers refuse an unsigned one)."""
        document = self.to_dict(base, ticket)
        return orjson.dumps(sign_document(document, key) if key is not None else document)

    def newer_than(self, other: WorkflowFlags) -> bool:
        """Whether this state reflects a later control-topic position than ``other``."""
        if self.offset is None:
            return False
        if other.offset is None or self.partition != other.partition:
            return True  # positions on different partitions do not compare; the writer of the doc wins
        return self.offset > other.offset


def _opt_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is not None and type(value) is not int:
        raise StateFormatError(f"{key}: must be an integer or null")
    return value


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and type(value) is not str:
        raise StateFormatError(f"{key}: must be a string or null")
    return value


def decode_state(raw: bytes, keyring: Keyring | None) -> WorkflowFlags:
    """A flags-topic document signed by a key ``keyring`` trusts for flags.

    Raises :class:`StateFormatError` on anything unexpected and ``SignatureError`` on a
    document not signed so. ``keyring=None`` skips the signature (reading one's own
    documents back in tests and tools, never for a document from Kafka).
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StateFormatError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateFormatError(f"not a {FORMAT} document")
    if keyring is not None:
        verify_document(data, keyring, "flags")
    workflow = data.get("workflow")
    if type(workflow) is not str or not workflow:
        raise StateFormatError("workflow: must be a non-empty string")
    segments = data.get("segments", {})
    applied = data.get("applied", [])
    version = data.get("version", 0)
    if not isinstance(segments, dict) or not all(type(k) is str for k in segments):
        raise StateFormatError("segments: must be a mapping of segment -> flags")
    if not isinstance(applied, list) or not all(type(i) is str for i in applied):
        raise StateFormatError("applied: must be a list of command ids")
    if type(version) is not int or version < 0:
        raise StateFormatError("version: must be a whole number")
    return WorkflowFlags(
        workflow=workflow,
        flags=_flag_map(data.get("flags", {}), "flags"),
        segments={name: _flag_map(layer, f"segments.{name}") for name, layer in segments.items()},
        version=version,
        partition=_opt_int(data, "partition"),
        offset=_opt_int(data, "offset"),
        last_command_id=_opt_str(data, "last_command_id"),
        updated_at=_opt_str(data, "updated_at"),
        applied=applied[-APPLIED_MEMORY:],
    )


def verified_state(value: bytes | None, keyring: Keyring | None) -> WorkflowFlags | tuple[str, str]:
    """A flag document's verified state, or ``(code, detail)`` saying why it is refused.

    For records of the flags topic and the copies kept in Redis alike. A tombstone (``None``)
    is refused: nobody signed it, and honouring it would erase a rollback.
    """
    if value is None:
        return "unsigned", "a tombstone is unsigned; the last verified state stays"
    try:
        return decode_state(value, keyring)
    except StateFormatError as exc:
        return "malformed", str(exc)
    except SignatureError as exc:
        return exc.problem, str(exc)


class FlagBook:
    """Every workflow's flags plus an index of applied command ids (the idempotency check)."""

    def __init__(self) -> None:
        self.workflows: dict[str, WorkflowFlags] = {}
        self._seen: dict[str, str] = {}

    def get(self, workflow: str) -> WorkflowFlags | None:
        return self.workflows.get(workflow)

    def seen(self, command_id: str) -> bool:
        return command_id in self._seen

    def apply(self, command: RollbackCommand, at: datetime, partition: int | None, offset: int | None) -> WorkflowFlags:
        state = self.workflows.get(command.workflow)
        if state is None:
            state = self.workflows[command.workflow] = WorkflowFlags(command.workflow)
        for old in state.apply(command, at, partition, offset):
            self._seen.pop(old, None)
        self._seen[command.command_id] = command.workflow
        return state

    def load(self, state: WorkflowFlags) -> None:
        """Take ``state`` as the truth for its workflow (a rebuild from the flags topic)."""
        previous = self.workflows.get(state.workflow)
        if previous is not None:
            for command_id in previous.applied:
                self._seen.pop(command_id, None)
        self.workflows[state.workflow] = state
        self._seen.update(dict.fromkeys(state.applied, state.workflow))

    def merge(self, state: WorkflowFlags) -> bool:
        """Take ``state`` only if it is newer than what we hold; whether it was taken."""
        current = self.workflows.get(state.workflow)
        if current is not None and not state.newer_than(current):
            return False
        self.load(state)
        return True

    def load_all(self, states: Iterable[WorkflowFlags]) -> None:
        for state in states:
            self.load(state)
