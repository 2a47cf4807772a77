"""Threshold: an absolute limit on one candidate metric over a trailing window (seed 2's list)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Final, Literal, TypeAlias

from pydantic import Field

from rollwatch.gates.kinds.common import Arms, confirm, detect, evidence_refs, needed, result
from rollwatch.gates.kinds.spec import GateKind, Issue, WindowNeed, guard_alpha
from rollwatch.gates.result import GateResult
from rollwatch.tickets.durations import PositiveDuration, format_duration, humanize_duration
from rollwatch.tickets.gatebase import GuardedGate
from rollwatch.tickets.wording import METRIC_WORDS, metric_value

if TYPE_CHECKING:
    from rollwatch.streams.bucket import WindowStats
    from rollwatch.streams.evidence import EvidenceKind
    from rollwatch.streams.route_state import RouteState
    from rollwatch.tickets.model import Estimates, Ticket

__all__ = ["KIND", "WORSE_DIRECTION", "ThresholdGate", "ThresholdMetric"]

ThresholdMetric: TypeAlias = Literal["error_rate", "p95_latency_ms", "avg_quality_score", "cost_per_request"]

WORSE_DIRECTION: Final = {
    "error_rate": ("above", "a higher error rate is worse"),
    "p95_latency_ms": ("above", "higher latency is worse"),
    "avg_quality_score": ("below", "lower quality is worse"),
    "cost_per_request": ("above", "higher cost is worse"),
}


class ThresholdGate(GuardedGate):
    """An absolute limit on one candidate metric over a trailing window.

    ``error_rate``: calls with status error or timeout / calls; ``p95_latency_ms``: 95th
    percentile of ``latency_ms``; ``avg_quality_score``: mean ``quality_score`` of scored
    calls; ``cost_per_request``: mean ``cost_usd``. ``direction`` says which side is a
    breach (strictly). ``min_samples``: candidate calls (scored calls for quality).
    """

    kind: Literal["threshold"]
    metric: ThresholdMetric
    direction: Literal["above", "below"]
    value: Annotated[float, Field(ge=0)]
    window: PositiveDuration


def _error_counts(stats: WindowStats) -> tuple[int, int]:
    return stats.errors, stats.calls


def _detected(gate: ThresholdGate) -> bool:
    """Only the error rate above a rate is a Bernoulli stream the change detector can watch."""
    if guard_alpha(gate) is None:
        return False
    return gate.metric == "error_rate" and gate.direction == "above" and 0 < gate.value < 1


def _evaluate(gate: ThresholdGate, arms: Arms, now_ms: int) -> GateResult:
    window = int(gate.window)
    cand, ctrl = arms.candidate, arms.control

    def measure(route: RouteState | None) -> tuple[float | None, int]:
        if route is None:
            return None, 0
        stats = route.window(window, now_ms)
        if gate.metric == "error_rate":
            return stats.error_rate, stats.calls
        if gate.metric == "p95_latency_ms":
            return route.latency_quantile(0.95, window, now_ms), stats.calls
        if gate.metric == "avg_quality_score":
            return stats.mean_quality, stats.quality_n
        return stats.cost_per_request_usd, stats.calls

    observed, n = measure(cand)
    control, _ = measure(ctrl)
    above = gate.direction == "above"

    def crosses(value: float | None) -> bool:
        return value is not None and (value > gate.value if above else value < gate.value)

    guard = None
    if _detected(gate):
        guard = detect(gate, arms, now_ms, _error_counts, gate.value, observed)
    breached, suspect = confirm(crosses(observed), guard)
    detail = "the control breaches this limit too" if breached and crosses(control) else ""
    kinds: tuple[EvidenceKind, ...] = ("error", "timeout") if gate.metric == "error_rate" else ()
    return result(
        gate,
        gate.metric,
        breached,
        observed,
        gate.value,
        control,
        format_duration(window),
        {"candidate": n},
        needed(gate.min_samples, candidate=n),
        evidence_refs(cand, *kinds),
        guard,
        detail,
        suspect,
    )


def _windows(gate: ThresholdGate) -> tuple[WindowNeed, ...]:
    """A time window only: the route's minute buckets hold it (no count window)."""
    return ()


def _explain(ticket: Ticket, gate: ThresholdGate) -> tuple[str, str]:
    return (
        f"the candidate's {METRIC_WORDS[gate.metric]} over the last {humanize_duration(gate.window)} is "
        f"{gate.direction} {metric_value(gate.metric, gate.value)}",
        f"at least {gate.min_samples:,} {'scored ' if gate.metric == 'avg_quality_score' else ''}candidate calls",
    )


def _check(gate: ThresholdGate, estimates: Estimates | None) -> Iterator[Issue]:
    worse, why = WORSE_DIRECTION[gate.metric]
    if gate.direction != worse:
        yield ("direction",), f"must be {worse} for {gate.metric}: {why}"
    if gate.metric == "error_rate" and gate.value > 1:
        yield ("value",), f"is a rate and must be at most 1 (0.05 = 5%), got {gate.value:g}"


KIND: Final = GateKind("threshold", ThresholdGate, _evaluate, _windows, _explain, _check, _detected)
