"""What the worker reads and writes, free of faust types so the core can be tested without it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Outgoing", "SourceRecord"]


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
