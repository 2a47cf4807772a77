"""Threshold: an absolute limit on one candidate metric over a trailing window (seed 2's list).

A guarded threshold runs a change detector for three metrics: the error rate (a Bernoulli
stream), the p95 latency (the share of calls slower than the limit, against 5%) and the mean
quality score (the mean detector of :mod:`rollwatch.gates.mean_detector`, from per-minute
sums). Cost per request has none: its guard is not used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Final, Literal, TypeAlias

from pydantic import Field

from rollwatch.gates.kinds.common import Arms, confirm, detect, detect_mean, evidence_refs, needed, result
from rollwatch.gates.kinds.spec import GateKind, Issue, WindowNeed, guard_alpha
from rollwatch.gates.mean_detector import quality_cap
from rollwatch.gates.mean_guard import feed_quality, quality_gain
from rollwatch.gates.result import GateResult
from rollwatch.gates.sequential import GuardVerdict
from rollwatch.tickets.durations import PositiveDuration, format_duration, humanize_duration
from rollwatch.tickets.gatebase import GuardedGate
from rollwatch.tickets.wording import METRIC_WORDS, metric_value

if TYPE_CHECKING:
    from rollwatch.gates.mean_detector import MeanDetector
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
    """The error rate above a rate, the p95 above a limit and mean quality below a floor; not cost per request."""
    if guard_alpha(gate) is None:
        return False
    if gate.metric == "error_rate":
        return gate.direction == "above" and 0 < gate.value < 1
    if gate.metric == "p95_latency_ms":
        return gate.direction == "above" and gate.value > 0
    return gate.metric == "avg_quality_score" and gate.direction == "below" and gate.value > 0


def _guard(gate: ThresholdGate, arms: Arms, now_ms: int, over: float | None) -> GuardVerdict | None:
    """The detector of a detected threshold gate, its null the ticket's limit.

    ``over`` is the window's value when it is over the limit (None otherwise).
    """
    cand = arms.candidate
    if cand is None:
        return None
    if gate.metric == "p95_latency_ms":
        # At most 5% of calls slower than the limit: "p95 above the limit" as a share of slow calls.
        rate = None
        if over is not None:
            slow, n = cand.calls_slower_than(gate.value, now_ms - int(gate.window), now_ms)
            rate = slow / n if n else None
        return detect(gate, arms, now_ms, _error_counts, 0.05, rate, slower_than=gate.value)
    if gate.metric == "avg_quality_score":
        # Mean quality at least the floor, scores assumed at most quality_cap(floor).
        floor, cap, start = gate.value, quality_cap(gate.value), arms.release_start_ms
        gain = 0.0
        if over is not None:  # the window's evidence rate, for the "about how many more" estimate
            stats = cand.window(int(gate.window), now_ms)
            gain = quality_gain(stats.quality_n, stats.quality_sum, stats.quality_sq, floor, cap)

        def feed(det: MeanDetector, route: RouteState, at_ms: int, log_a: float) -> None:
            feed_quality(det, route, start, floor, cap, at_ms, log_a)

        return detect_mean(gate, arms, now_ms, feed, gain)
    return detect(gate, arms, now_ms, _error_counts, gate.value, over)


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

    guard = _guard(gate, arms, now_ms, observed if crosses(observed) else None) if _detected(gate) else None
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
