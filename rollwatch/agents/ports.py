"""The seam between the faust layer and the pure core.

The worker only moves bytes and persists state; every decision is made by a
:class:`WorkflowEngine`, one per workflow, which knows nothing of Kafka. Replay of a
JSONL file and the live worker drive the same engine, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from rollwatch.events import Event
from rollwatch.gates.result import ApplyStats, Emission, GateReading

__all__ = ["ApplyStats", "Emission", "EngineFactory", "GateReading", "WorkflowEngine"]


class WorkflowEngine(Protocol):
    """Windowed state plus the release ticket of one workflow, turning events into commands."""

    @property
    def workflow(self) -> str: ...

    def set_ticket(self, ticket: bytes) -> None:
        """Install or replace the release ticket (YAML or JSON bytes from the releases topic)."""

    def apply(self, events: Sequence[Event]) -> ApplyStats:
        """Fold events (all of this workflow) into the windows; never raises on event content."""

    def evaluate(self, now_ms: int, *, backlog: bool = False) -> list[Emission]:
        """Judge the gates at ``now_ms``; commands to publish (deterministic ``command_id``).

        ``backlog``: more of this workflow's telemetry is waiting in the log, so an engine
        that judges on event time may leave the clock's judgement until it has caught up.
        """

    def readings(self) -> list[GateReading]:
        """The gate values of the last evaluation."""

    def status(self) -> dict[str, Any]:
        """JSON-able aggregates for the status endpoint."""

    def to_bytes(self) -> bytes:
        """A checkpoint of everything above (never pickle)."""


class EngineFactory(Protocol):
    def new(self, workflow: str) -> WorkflowEngine: ...

    def restore(self, data: bytes) -> WorkflowEngine: ...
