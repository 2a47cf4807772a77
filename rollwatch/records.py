"""Telemetry event records v1 and the limits the contract puts on them.

Kept apart from the validators (``rollwatch.events`` for the hand-written one that names
every problem, ``rollwatch.wire`` for the msgspec fast path) so both can build the same
records without importing each other. Time is integer epoch milliseconds (``ts_ms``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Literal, TypeAlias

__all__ = [
    "ARMS",
    "MAX_BATCH",
    "MAX_ID",
    "MAX_SAMPLE",
    "MAX_TS_SECONDS",
    "Arm",
    "CallEvent",
    "CallStatus",
    "ComplaintEvent",
    "Event",
    "ReviewEvent",
    "Verdict",
]

Arm: TypeAlias = Literal["control", "candidate", "shadow"]
CallStatus: TypeAlias = Literal["ok", "error", "timeout"]
Verdict: TypeAlias = Literal["approved", "rejected"]

ARMS: Final = frozenset({"control", "candidate", "shadow"})
MAX_BATCH: Final = 50_000
"""Most events one message may carry; a larger batch is refused whole (it is a producer bug)."""
MAX_ID: Final = 256
MAX_SAMPLE: Final = 4096
MAX_TS_SECONDS: Final = 100_000_000_000
"""Epoch seconds above this are almost surely milliseconds sent by mistake."""


@dataclass(slots=True)
class CallEvent:
    """One model call as the application saw it."""

    type: ClassVar[str] = "call"
    event_id: str
    ts_ms: int
    workflow: str
    route: str
    latency_ms: float
    status: CallStatus
    schema_valid: bool | None
    safety_blocked: bool
    task_success: bool | None
    cost_usd: float
    arm: Arm | None = None
    segment: str | None = None
    trace_id: str | None = None
    provider: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tool_calls: int | None = None
    quality_score: float | None = None


@dataclass(slots=True)
class ReviewEvent:
    """A human reviewer's verdict on an output, arriving after the call."""

    type: ClassVar[str] = "review"
    event_id: str
    ts_ms: int
    workflow: str
    route: str
    verdict: Verdict
    arm: Arm | None = None
    segment: str | None = None
    trace_id: str | None = None
    call_event_id: str | None = None
    reviewer: str | None = None


@dataclass(slots=True)
class ComplaintEvent:
    """A customer complaint about AI behaviour; only confirmed ones count toward gates."""

    type: ClassVar[str] = "complaint"
    event_id: str
    ts_ms: int
    workflow: str
    route: str
    confirmed: bool
    arm: Arm | None = None
    segment: str | None = None
    trace_id: str | None = None
    call_event_id: str | None = None
    sample: str | None = None


Event: TypeAlias = CallEvent | ReviewEvent | ComplaintEvent
