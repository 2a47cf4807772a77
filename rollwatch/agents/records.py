"""What the worker reads, writes and keeps per workflow, free of faust types so the core can be tested without it."""

from __future__ import annotations

from dataclasses import dataclass, field

from rollwatch.agents.ports import WorkflowEngine
from rollwatch.events import Event

__all__ = ["BoundedSet", "Fold", "Judgement", "Outgoing", "Slot", "SourceRecord", "Topics"]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One Kafka message as consumed, with the coordinates a dead letter must point back to."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    """The record's Kafka timestamp (the producer's create time); None when unknown."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to produce. ``partition`` is set only for changelog records (co-partitioning)."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class Topics:
    telemetry: str
    control: str
    deadletter: str
    releases: str
    changelog: str


@dataclass(slots=True)
class Slot:
    """One workflow's engine and its place in the telemetry log."""

    workflow: str
    engine: WorkflowEngine
    home: int
    applied: dict[int, int] = field(default_factory=dict)
    ticket: bytes | None = None
    """The ticket bytes last installed on *this* engine object (None after a restore)."""
    pending: list[Event] = field(default_factory=list)
    dirty: bool = False
    """The engine holds events or decisions that no checkpoint written so far contains."""


@dataclass(slots=True)
class Fold:
    """The result of folding one batch: dead letters to send and the workflows it touched."""

    deadletters: list[Outgoing]
    touched: list[Slot]
    events: int = 0


@dataclass(slots=True)
class Judgement:
    commands: list[Outgoing]
    emitted: list[Slot]
    breaches: list[int] = field(default_factory=list)
    """Event time of the breaching event of each command: the caller observes detection latency once delivered."""


class BoundedSet:
    """The most recent ``limit`` keys, oldest forgotten first (a dict keeps insertion order)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._keys: dict[str, None] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        self._keys[key] = None
        if len(self._keys) > self._limit:
            del self._keys[next(iter(self._keys))]
