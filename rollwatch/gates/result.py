"""What a gate says when it is evaluated, and the decisions the judge derives from it.

A gate never passes silently on no data, nor while it is over its threshold. It reports
one of four states: ``healthy``; ``suspect`` (the window is over the threshold, the
change detector does not have the evidence yet: it shows how much it has and about how
many more calls would confirm it); ``breached`` (confirmed); and ``insufficient``
(insufficient evidence: too few samples, with how many more each arm needs), so the
status page can say "waiting for 140 more candidate calls" instead of showing green.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from rollwatch.gates.sequential import GuardVerdict

if TYPE_CHECKING:
    # Types only: the gate kinds import this module, and the ticket model imports the kinds
    # (see rollwatch.gates.kinds), so it must not import the commands or the ticket package.
    from rollwatch.commands import RollbackCommand
    from rollwatch.tickets.catalogue import FlagName

__all__ = [
    "ApplyStats",
    "Decision",
    "DecisionKind",
    "Emission",
    "EvidenceRef",
    "GateReading",
    "GateResult",
    "GateState",
    "STATES",
    "evidence_text",
    "gate_json",
]

GateState: TypeAlias = Literal["breached", "suspect", "healthy", "insufficient"]
STATES: Final[tuple[GateState, ...]] = ("breached", "suspect", "healthy", "insufficient")
DecisionKind: TypeAlias = Literal["rollback", "promote", "hold", "escalate"]


@dataclass(frozen=True, slots=True)
class EvidenceRef:
    """One offending item a command points to: what it was and where to find its trace."""

    kind: str
    event_id: str
    trace_id: str | None
    ts_ms: int


@dataclass(frozen=True, slots=True)
class GateResult:
    """A gate's verdict at one instant, with the numbers behind it.

    ``observed`` and ``control`` use the unit of ``metric``. ``threshold`` is the value
    that ``observed`` was compared with; for relative gates it is already derived from
    the control (2 x the control's p95, for example). ``needed`` is empty unless
    ``state`` is ``insufficient``. ``breach_ts_ms`` is the event time of the newest
    offending event, which the detection-latency histogram starts from.
    """

    gate: str
    kind: str
    metric: str
    state: GateState
    observed: float | None
    threshold: float | None
    control: float | None
    window: str
    samples: Mapping[str, int]
    needed: Mapping[str, int] = field(default_factory=dict)
    evidence: tuple[EvidenceRef, ...] = ()
    breach_ts_ms: int | None = None
    guard: GuardVerdict | None = None
    detail: str = ""
    segment: str | None = None
    """The segment this result is about: a gate's fixed ``segment``, or one of a ``by_segment`` gate's."""

    @property
    def key(self) -> str:
        """Identity for the judge's memory and command ids: one ladder per gate and segment."""
        return self.gate if self.segment is None else f"{self.gate}@{self.segment}"

    @property
    def breached(self) -> bool:
        return self.state == "breached"


def _evidence_json(result: GateResult) -> dict[str, Any] | None:
    guard = result.guard
    if guard is None:
        return None
    return {
        "log_e": round(guard.log_lr, 3) if guard.log_lr > -1e8 else None,
        "log_e_needed": None if guard.log_threshold is None else round(guard.log_threshold, 3),
        "confirmed": guard.significant,
        "more_calls": guard.more_needed,
    }


def evidence_text(result: GateResult) -> str:
    """The detector's evidence in words: "evidence 4.1 of 11.2 (log e), ~230 more calls"; "" without one."""
    guard = result.guard
    if guard is None or guard.log_threshold is None:
        return ""
    have = max(guard.log_lr, 0.0)
    text = f"evidence {have:.1f} of {guard.log_threshold:.1f} (log e)"
    if result.state == "suspect":
        more = f"~{guard.more_needed:,} more calls" if guard.more_needed is not None else "no estimate of calls yet"
        text += f", {more}"
    return text


def gate_json(result: GateResult) -> dict[str, Any]:
    """A gate result as the status endpoint and ``replay --json`` print it."""
    return {
        "gate": result.gate,
        "segment": result.segment,
        "kind": result.kind,
        "state": result.state,
        "metric": result.metric,
        "observed": result.observed,
        "threshold": result.threshold,
        "control": result.control,
        "window": result.window,
        "samples": dict(result.samples),
        "needed": dict(result.needed),
        "evidence": _evidence_json(result),
        "detail": result.detail,
    }


@dataclass(frozen=True, slots=True)
class Decision:
    """What the judge concluded for one gate (or for promotion) at ``at_ms``.

    ``step`` is the rung of the gate's ladder being taken (0-based). ``episode`` counts
    this gate's breach episodes under the ticket revision. Together with the ticket
    they make ``command_id``, so a restarted worker that re-derives the same decision
    emits the same id, and downstream consumers treat the repeat as a no-op.
    """

    kind: DecisionKind
    gate: str
    action: str
    flags: Mapping[FlagName, str | bool | float]
    at_ms: int
    command_id: str
    result: GateResult
    step: int = 0
    episode: int = 0
    segment: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class ApplyStats:
    """What happened to a batch of events of one workflow."""

    applied: int
    late: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class Emission:
    """A command to publish, with the event time of the event that breached the gate.

    ``breach_ts_ms`` feeds the detection-latency histogram (breach event time to emission).
    """

    command: RollbackCommand
    breach_ts_ms: int


@dataclass(frozen=True, slots=True)
class GateReading:
    """One gate's current value for one arm, for /metrics and the status endpoint."""

    gate: str
    arm: str
    metric: str
    value: float | None
    threshold: float | None
    state: str  # one of STATES
