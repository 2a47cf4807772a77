"""Gate evaluators: one function per gate kind, from two arms' windows to a :class:`GateResult`.

Every comparison states its direction: ``>`` where the name says ``above``, ``>=`` for
``at_least``, and ``<`` for ``below``. The seed sketch's ``current > threshold``
for quality is a bug, so quality thresholds compare ``below``.

Relative gates (schema failures, review rejections, safety blocks, latency against
the control's baseline, drift) do not blame the candidate for what the control
suffers too. When both arms degrade, the gate reports healthy and says why in
``detail``, because a provider-wide incident is not the candidate's regression. An
absolute threshold (seed 2's list) still fires, because it is absolute; its detail
notes when the control breaches it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rollwatch.gates.result import EvidenceRef, GateResult, GateState
from rollwatch.gates.sequential import GuardVerdict, difference_above, rate_above
from rollwatch.streams.bucket import WindowStats
from rollwatch.streams.count_window import CountWindow
from rollwatch.streams.evidence import Evidence, EvidenceKind
from rollwatch.streams.route_state import RouteState
from rollwatch.tickets.durations import format_duration
from rollwatch.tickets.gates import (
    AnyGate,
    ComplaintsGate,
    CostPerTaskGate,
    DriftGate,
    LatencyRegressionGate,
    NoGuard,
    ReviewRejectionGate,
    SafetyBlocksGate,
    SchemaFailureGate,
    ThresholdGate,
)
from rollwatch.tickets.model import Ticket

__all__ = ["Arms", "evaluate_gate"]

MAX_EVIDENCE = 20


@dataclass(frozen=True, slots=True)
class Arms:
    """What a gate may look at: both arms, the ticket, and the release's start."""

    candidate: RouteState | None
    control: RouteState | None
    ticket: Ticket
    release_start_ms: int


def _alpha(gate: Any) -> float | None:
    guard = getattr(gate, "guard", None)
    if guard is None or isinstance(guard, NoGuard):
        return None
    alpha: float = guard.alpha
    return alpha


def _tail(window: CountWindow | None, size: int) -> tuple[int, int]:
    """(set, held) among the newest ``size`` observations of a count window."""
    if window is None:
        return 0, 0
    if size >= window.size or window.n <= size:
        return window.count, window.n
    newest = window.flags()[-size:]
    return sum(newest), len(newest)


def _evidence(route: RouteState | None, *kinds: EvidenceKind) -> tuple[EvidenceRef, ...]:
    if route is None:
        return ()
    items: list[Evidence] = []
    for kind in kinds:
        items.extend(route.evidence_items(kind))
    items.sort(key=lambda e: e.ts_ms, reverse=True)
    return tuple(EvidenceRef(e.kind, e.event_id, e.trace_id, e.ts_ms) for e in items[:MAX_EVIDENCE])


def _since_release(route: RouteState | None, arms: Arms, now_ms: int) -> WindowStats | None:
    """Counts since the release started: the guard's sequence.

    The guards are martingales over one growing sequence, not over a sliding window:
    re-testing every window would spend alpha again and again (measured: over a third
    of identical-arm runs rolled back in six hours). The literal gate reads the
    window; the guard reads everything since the release. The start is floored to the
    coarse bucket so the sequence only ever grows as buckets spill.
    """
    if route is None:
        return None
    coarse = route.config.coarse.bucket_ms
    start = arms.release_start_ms - arms.release_start_ms % coarse
    return route.window_between(start, now_ms + 1)


def _needed(min_samples: int, **have: int) -> dict[str, int]:
    return {arm: min_samples - n for arm, n in have.items() if n < min_samples}


def _result(
    gate: AnyGate,
    metric: str,
    breached: bool,
    observed: float | None,
    threshold: float | None,
    control: float | None,
    window: str,
    samples: dict[str, int],
    needed: dict[str, int],
    evidence: tuple[EvidenceRef, ...] = (),
    guard: GuardVerdict | None = None,
    detail: str = "",
) -> GateResult:
    state: GateState = "insufficient" if needed else ("breached" if breached else "healthy")
    breach_ts = evidence[0].ts_ms if evidence and state == "breached" else None
    return GateResult(
        gate.name,
        gate.kind,
        metric,
        state,
        observed,
        threshold,
        control,
        window,
        samples,
        needed,
        evidence if state == "breached" else (),
        breach_ts,
        guard,
        detail,
    )


def _schema(gate: SchemaFailureGate, arms: Arms, now_ms: int) -> GateResult:
    cand = arms.candidate.schema_failures if arms.candidate else None
    ctrl = arms.control.schema_failures if arms.control else None
    k_c, n_c = _tail(cand, gate.window_calls)
    k_b, n_b = _tail(ctrl, gate.window_calls)
    needed = _needed(gate.min_samples, candidate=n_c, control=n_b)
    rate_c = k_c / n_c if n_c else None
    rate_b = k_b / n_b if n_b else None
    guard = None
    breached = rate_c is not None and rate_b is not None and rate_c > gate.rate_above
    detail = ""
    if breached and rate_b is not None and rate_b >= gate.control_rate_below:
        breached, detail = False, "the control fails schema validation too: not the candidate's regression"
    alpha = _alpha(gate)
    cum = _since_release(arms.candidate, arms, now_ms)
    if breached and alpha is not None and cum is not None:
        guard = rate_above(cum.schema_failed, cum.schema_checked, gate.rate_above, alpha)
        breached = guard.significant
    return _result(
        gate,
        "schema_failure_rate",
        breached,
        rate_c,
        gate.rate_above,
        rate_b,
        f"last {gate.window_calls} calls",
        {"candidate": n_c, "control": n_b},
        needed,
        _evidence(arms.candidate, "schema_failure"),
        guard,
        detail,
    )


def _reviews(gate: ReviewRejectionGate, arms: Arms, now_ms: int) -> GateResult:
    k_c, n_c = _tail(arms.candidate.review_rejections if arms.candidate else None, gate.window_reviews)
    k_b, n_b = _tail(arms.control.review_rejections if arms.control else None, gate.window_reviews)
    needed = _needed(gate.min_samples, candidate=n_c, control=n_b)
    rate_c = k_c / n_c if n_c else None
    rate_b = k_b / n_b if n_b else None
    breached = rate_c is not None and rate_b is not None and rate_c - rate_b >= gate.worse_by_at_least
    guard = None
    alpha = _alpha(gate)
    cum_c, cum_b = _since_release(arms.candidate, arms, now_ms), _since_release(arms.control, arms, now_ms)
    if breached and alpha is not None and cum_c is not None and cum_b is not None:
        guard = difference_above(cum_c.rejected, cum_c.reviews, cum_b.rejected, cum_b.reviews, alpha=alpha)
        breached = guard.significant
    threshold = None if rate_b is None else rate_b + gate.worse_by_at_least
    return _result(
        gate,
        "review_rejection_rate",
        breached,
        rate_c,
        threshold,
        rate_b,
        f"last {gate.window_reviews} reviews",
        {"candidate": n_c, "control": n_b},
        needed,
        _evidence(arms.candidate, "rejected_review"),
        guard,
    )


def _safety(gate: SafetyBlocksGate, arms: Arms, now_ms: int) -> GateResult:
    k_c, n_c = _tail(arms.candidate.safety_blocks if arms.candidate else None, gate.window_requests)
    k_b, n_b = _tail(arms.control.safety_blocks if arms.control else None, gate.window_requests)
    needed = _needed(gate.min_samples, candidate=n_c, control=n_b)
    rate_c = k_c / n_c if n_c else None
    rate_b = k_b / n_b if n_b else None
    floor = gate.control_rate_floor if gate.control_rate_floor is not None else 1 / gate.window_requests
    threshold = None if rate_b is None else gate.multiplier_at_least * max(rate_b, floor)
    breached = rate_c is not None and threshold is not None and rate_c >= threshold
    guard = None
    alpha = _alpha(gate)
    cum_c, cum_b = _since_release(arms.candidate, arms, now_ms), _since_release(arms.control, arms, now_ms)
    if breached and alpha is not None and cum_c is not None and cum_b is not None:
        # Blocks are rare: tune the mixture to effects of about one point, not five.
        guard = difference_above(
            cum_c.safety_blocked, cum_c.calls, cum_b.safety_blocked, cum_b.calls, alpha=alpha, tau=0.01
        )
        breached = guard.significant
    return _result(
        gate,
        "safety_block_rate",
        breached,
        rate_c,
        threshold,
        rate_b,
        f"last {gate.window_requests} calls",
        {"candidate": n_c, "control": n_b},
        needed,
        _evidence(arms.candidate, "safety_block"),
        guard,
    )


def _latency(gate: LatencyRegressionGate, arms: Arms, now_ms: int) -> GateResult:
    q = gate.percentile / 100
    window, baseline = int(gate.window), int(gate.baseline_window)
    cand, ctrl = arms.candidate, arms.control
    n_c = cand.window(window, now_ms).calls if cand else 0
    base_start = now_ms - window - baseline
    n_base = ctrl.window_between(base_start, now_ms - window).calls if ctrl else 0
    needed = _needed(gate.min_samples, candidate=n_c) | _needed(1, control_baseline=n_base)
    observed = cand.latency_quantile(q, window, now_ms) if cand else None
    base = ctrl.baseline_latency_quantile(q, now_ms, recent_ms=window, baseline_ms=baseline) if ctrl else None
    threshold = None if base is None else gate.multiplier_above * base
    breached = observed is not None and threshold is not None and observed > threshold
    detail = ""
    control_now = ctrl.latency_quantile(q, window, now_ms) if ctrl else None
    if breached and control_now is not None and threshold is not None and control_now > threshold:
        breached, detail = False, "the control route is as slow: a provider-wide slowdown, not the candidate"
    return _result(
        gate,
        f"p{gate.percentile:g}_latency_ms",
        breached,
        observed,
        threshold,
        control_now,
        format_duration(window),
        {"candidate": n_c, "control_baseline": n_base},
        needed,
        detail=detail,
    )


def _cost(gate: CostPerTaskGate, arms: Arms, now_ms: int) -> GateResult:
    tasks = arms.candidate.tasks if arms.candidate else None
    n = tasks.completions if tasks else 0
    estimate = arms.ticket.estimates.cost_per_successful_task_usd if arms.ticket.estimates else None
    needed = _needed(gate.min_samples, candidate=n)
    if estimate is None:
        needed = needed or {"estimate": 1}
    observed = tasks.cost_per_success_usd if tasks else None
    threshold = None if estimate is None else gate.multiplier_above * estimate
    breached = observed is not None and threshold is not None and observed > threshold
    control = arms.control.tasks.cost_per_success_usd if arms.control else None
    return _result(
        gate,
        "cost_per_successful_task_usd",
        breached,
        observed,
        threshold,
        control,
        f"last {gate.window_tasks} completed tasks",
        {"candidate": n},
        needed,
    )


def _complaints(gate: ComplaintsGate, arms: Arms, now_ms: int) -> GateResult:
    start = max(arms.release_start_ms, now_ms - int(arms.ticket.canary.release_window))
    cand = arms.candidate
    view = cand.complaints_between(start, now_ms + 1) if cand else None
    # Buckets count by their start: floor the release start so its first minute is in.
    bucket_ms = cand.config.fine.bucket_ms if cand else 1
    calls = cand.window_between(start - start % bucket_ms, now_ms + 1).calls if cand else 0
    count = view.count if view else 0
    if gate.require_sample and view is not None:
        count = sum(1 for item in view.items if item.sample)
    breached = count >= gate.confirmed_at_least
    evidence = tuple(EvidenceRef(e.kind, e.event_id, e.trace_id, e.ts_ms) for e in (view.items if view else ()))[
        -MAX_EVIDENCE:
    ][::-1]
    return _result(
        gate,
        "confirmed_complaints",
        breached,
        float(count),
        float(gate.confirmed_at_least),
        None,
        f"release window {format_duration(int(arms.ticket.canary.release_window))}",
        {"candidate": calls},
        _needed(gate.min_samples, candidate=calls),
        evidence,
    )


def _threshold(gate: ThresholdGate, arms: Arms, now_ms: int) -> GateResult:
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

    breached = crosses(observed)
    guard = None
    alpha = _alpha(gate)
    guarded = gate.metric == "error_rate" and above and 0 < gate.value < 1
    cum = _since_release(cand, arms, now_ms)
    if breached and alpha is not None and guarded and cum is not None:
        guard = rate_above(cum.errors, cum.calls, gate.value, alpha)
        breached = guard.significant
    detail = "the control breaches this limit too" if breached and crosses(control) else ""
    kinds: tuple[EvidenceKind, ...] = ("error", "timeout") if gate.metric == "error_rate" else ()
    return _result(
        gate,
        gate.metric,
        breached,
        observed,
        gate.value,
        control,
        format_duration(window),
        {"candidate": n},
        _needed(gate.min_samples, candidate=n),
        _evidence(cand, *kinds),
        guard,
        detail,
    )


def _drift(gate: DriftGate, arms: Arms, now_ms: int) -> GateResult:
    window = int(gate.window)
    cand, ctrl = arms.candidate, arms.control
    n_c = cand.window(window, now_ms).calls if cand else 0
    n_b = ctrl.window(window, now_ms).calls if ctrl else 0
    needed = _needed(gate.min_samples, candidate=n_c, control=n_b)

    def drifted(route: RouteState | None) -> int | None:
        at = route.drift.drift_detected_at_ms(gate.metric) if route else None
        return at if at is not None and now_ms - window <= at <= now_ms else None

    def mean(route: RouteState, start: int, end: int) -> float | None:
        stats = route.window_between(start, end)
        if gate.metric == "latency":
            return stats.mean_latency_ms
        if gate.metric == "quality":
            return stats.mean_quality
        return stats.cost_per_request_usd

    at = drifted(cand)
    breached = at is not None and drifted(ctrl) is None
    before = after = None
    if at is not None and cand is not None:
        before, after = mean(cand, at - window, at), mean(cand, at, now_ms + 1)
        if before is not None and after is not None:
            rising = after > before
            breached = breached and rising == (gate.direction == "increase")
    detail = f"candidate drift at {at}" if at is not None else ""
    return _result(
        gate,
        f"{gate.metric}_drift",
        breached,
        after,
        None,
        before,
        format_duration(window),
        {"candidate": n_c, "control": n_b},
        needed,
        detail=detail,
    )


_EVALUATORS: dict[type, Callable[[Any, Arms, int], GateResult]] = {
    SchemaFailureGate: _schema,
    ReviewRejectionGate: _reviews,
    SafetyBlocksGate: _safety,
    LatencyRegressionGate: _latency,
    CostPerTaskGate: _cost,
    ComplaintsGate: _complaints,
    ThresholdGate: _threshold,
    DriftGate: _drift,
}


def evaluate_gate(gate: AnyGate, arms: Arms, now_ms: int) -> GateResult:
    """The gate's state at ``now_ms`` (event time)."""
    return _EVALUATORS[type(gate)](gate, arms, now_ms)
