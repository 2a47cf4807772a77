"""Latency regression: a candidate latency percentile against the control's own history.

Its change detector reads the ticket's "p95 above 2x the baseline p95" as "more than 5% of
calls slower than 2x the baseline p95": a Bernoulli stream (slow or not) for the detector of
:mod:`rollwatch.gates.detector`, slow calls counted from the route's per-minute latency
sketches (:meth:`~rollwatch.streams.route_state.RouteState.calls_slower_than`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Final, Literal

from pydantic import Field

from rollwatch.gates.kinds.common import Arms, confirm, control_ucb, detect, needed, result
from rollwatch.gates.kinds.spec import GateKind, Issue, WindowNeed, guard_alpha
from rollwatch.gates.result import GateResult
from rollwatch.tickets.durations import PositiveDuration, format_duration, humanize_duration
from rollwatch.tickets.fieldtypes import Multiplier
from rollwatch.tickets.gatebase import GuardedGate
from rollwatch.tickets.wording import num

if TYPE_CHECKING:
    from rollwatch.streams.bucket import WindowStats
    from rollwatch.tickets.model import Estimates, Ticket

__all__ = ["KIND", "LatencyRegressionGate"]


class LatencyRegressionGate(GuardedGate):
    """Candidate end-to-end latency percentile regresses against the control's history.

    Breached when the candidate's ``percentile`` of ``latency_ms`` over the trailing
    ``window`` is above ``multiplier_above`` times the control route's same percentile
    over the ``baseline_window`` before the canary, continuously for ``sustained``.
    ``min_samples``: candidate calls in ``window``.
    """

    kind: Literal["latency_regression"]
    percentile: Annotated[float, Field(gt=0, lt=100)]
    window: PositiveDuration
    baseline_window: PositiveDuration
    multiplier_above: Multiplier
    sustained: PositiveDuration


def _evaluate(gate: LatencyRegressionGate, arms: Arms, now_ms: int) -> GateResult:
    q = gate.percentile / 100
    window, baseline = int(gate.window), int(gate.baseline_window)
    cand, ctrl = arms.candidate, arms.control
    n_c = cand.window(window, now_ms).calls if cand else 0
    base_start = now_ms - window - baseline
    n_base = ctrl.window_between(base_start, now_ms - window).calls if ctrl else 0
    missing = needed(gate.min_samples, candidate=n_c) | needed(1, control_baseline=n_base)
    observed = cand.latency_quantile(q, window, now_ms) if cand else None
    base = ctrl.baseline_latency_quantile(q, now_ms, recent_ms=window, baseline_ms=baseline) if ctrl else None
    threshold = None if base is None else gate.multiplier_above * base
    over = observed is not None and threshold is not None and observed > threshold
    detail = ""
    control_now = ctrl.latency_quantile(q, window, now_ms) if ctrl else None
    if over and control_now is not None and threshold is not None and control_now > threshold:
        over, detail = False, "the control route is as slow: a provider-wide slowdown, not the candidate"
    guard = None
    if _detected(gate) and threshold is not None and cand is not None:
        # The null is the ticket's: at most 1 - q of the candidate's calls are slower than the
        # threshold; or, when the control's own p95 is over the threshold too, no more than the
        # control's share (a provider-wide slowdown is not the candidate's regression).
        p0 = 1 - q
        if control_now is not None and control_now > threshold:
            ucb = control_ucb(ctrl, now_ms, _no_counts, slower_than=threshold)
            p0 = max(p0, ucb if ucb is not None else 0.0)
        rate = None
        if over:  # the window's share of slow calls, for the "about how many more" estimate
            slow, n = cand.calls_slower_than(threshold, now_ms - window, now_ms)
            rate = slow / n if n else None
        guard = detect(gate, arms, now_ms, _no_counts, p0, rate, slower_than=threshold)
    breached, suspect = confirm(over, guard)
    return result(
        gate,
        f"p{gate.percentile:g}_latency_ms",
        breached,
        observed,
        threshold,
        control_now,
        format_duration(window),
        {"candidate": n_c, "control_baseline": n_base},
        missing,
        guard=guard,
        detail=detail,
        suspect=suspect,
    )


def _no_counts(stats: WindowStats) -> tuple[int, int]:
    """Unused: the latency detector counts slow calls from the sketches, not from window sums."""
    return 0, 0


def _detected(gate: LatencyRegressionGate) -> bool:
    """A guarded latency gate runs the change detector on its share of slow calls."""
    return guard_alpha(gate) is not None


def _windows(gate: LatencyRegressionGate) -> tuple[WindowNeed, ...]:
    """Time windows only: the route's minute and six-hour buckets hold them (no count window)."""
    return ()


def _explain(ticket: Ticket, gate: LatencyRegressionGate) -> tuple[str, str]:
    p = f"p{num(gate.percentile)}"
    return (
        f"the candidate's {p} end-to-end latency over the last {humanize_duration(gate.window)} is above "
        f"{num(gate.multiplier_above)}x the control route's {p} over the previous "
        f"{humanize_duration(gate.baseline_window)}, sustained for {humanize_duration(gate.sustained)}",
        f"at least {gate.min_samples:,} candidate calls in the window",
    )


def _check(gate: LatencyRegressionGate, estimates: Estimates | None) -> Iterator[Issue]:
    if gate.baseline_window < gate.window:
        yield ("baseline_window",), f"must be at least window ({format_duration(gate.window)})"


def _sustained(gate: LatencyRegressionGate) -> int:
    return int(gate.sustained)


KIND: Final = GateKind(
    "latency_regression", LatencyRegressionGate, _evaluate, _windows, _explain, _check, _detected, _sustained
)
