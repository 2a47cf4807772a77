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

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from rollwatch.gates.bank import DetectorBank
from rollwatch.gates.detector import expected_log_lr
from rollwatch.gates.mean_detector import MeanDetector, quality_cap
from rollwatch.gates.mean_guard import cost_gain, feed_quality, feed_tasks, quality_gain
from rollwatch.gates.result import EvidenceRef, GateResult, GateState
from rollwatch.gates.sequential import GuardVerdict
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

__all__ = ["Arms", "detector_bank", "evaluate_gate"]

MAX_EVIDENCE = 20
CONTROL_SPAN_MS: Final = 15 * 60_000
"""The control's rate behind a two-arm null is measured over this trailing span (with a margin)."""
SEGMENT_SHARES: Final = 8
"""A ``by_segment`` gate's share of alpha is split over this many segments (the engine's MAX_SEGMENTS)."""


@dataclass(frozen=True, slots=True)
class Arms:
    """What a gate may look at: both arms, the ticket, and the release's start."""

    candidate: RouteState | None
    control: RouteState | None
    ticket: Ticket
    release_start_ms: int
    detectors: DetectorBank | None = None
    """The change detectors' state; without one each evaluation starts a fresh detector at the release start."""
    segment: str | None = None
    """The segment these arms are about (names the detector)."""


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


def _detected(gate: AnyGate) -> bool:
    """Gates whose guard runs a change detector: every guarded kind whose hypothesis is a
    rate (schema, reviews, safety, errors, latency as a share of slow calls) or a mean
    (cost per successful task, quality); not cost per request, nor complaints and drift."""
    if _alpha(gate) is None:
        return False
    if isinstance(gate, ThresholdGate):
        if gate.metric == "error_rate":
            return gate.direction == "above" and 0 < gate.value < 1
        if gate.metric == "p95_latency_ms":
            return gate.direction == "above" and gate.value > 0
        return gate.metric == "avg_quality_score" and gate.direction == "below" and gate.value > 0
    kinds = SchemaFailureGate | ReviewRejectionGate | SafetyBlocksGate | LatencyRegressionGate | CostPerTaskGate
    return isinstance(gate, kinds)


def detector_bank(ticket: Ticket) -> DetectorBank:
    """A fresh bank for ``ticket``: its alpha (the strictest guard's), split over its detectors.

    A ``by_segment`` gate's share is split again over :data:`SEGMENT_SHARES` segments, one
    per segment it may judge, so the ticket's family-wise bound holds whatever segments appear.
    """
    guarded = [g for g in ticket.gates if _detected(g)]
    alphas = [a for a in (_alpha(g) for g in guarded) if a is not None]
    horizon = int(ticket.canary.duration)
    return DetectorBank(min(alphas, default=0.05), max(len(guarded), 1), horizon, SEGMENT_SHARES)


Counts = Callable[[WindowStats], tuple[int, int]]


def _ucb(hits: int, n: int) -> float:
    p = hits / n
    return p + 2 * math.sqrt(max(p * (1 - p), 1 / n) / n) + 1 / n


def _control_ucb(
    route: RouteState | None, now_ms: int, counts: Counts, slower_than: float | None = None
) -> float | None:
    """The control's rate over the last :data:`CONTROL_SPAN_MS`, plus two standard errors.

    The margin errs on the lenient side: a two-arm null built on an underestimated
    control would blame the candidate for noise. The span is short enough to follow a
    provider-wide incident that degrades the control too, and long enough to hold
    thousands of calls at ordinary traffic (the ticket's count window, a few hundred,
    gives a margin as wide as the effects it should detect).
    """
    if route is None:
        return None
    if slower_than is not None:
        hits, n = route.calls_slower_than(slower_than, now_ms + 1 - CONTROL_SPAN_MS, now_ms + 1)
    else:
        hits, n = counts(route.window(CONTROL_SPAN_MS, now_ms + 1))
    return _ucb(hits, n) if n > 0 else None


def _slot(gate: AnyGate, arms: Arms) -> tuple[DetectorBank, str, float]:
    """(bank, key, alarm level) of the gate's detector for these arms."""
    bank = arms.detectors if arms.detectors is not None else detector_bank(arms.ticket)
    key = gate.name if arms.segment is None else f"{gate.name}@{arms.segment}"
    return bank, key, bank.log_a(per_segment=gate.by_segment)


def _event_now(route: RouteState, now_ms: int) -> int:
    """The detector moves in event time: a wall-clock judgement ahead of the newest event
    (a worker catching up on a backlog) must not move its cursor past calls still to come."""
    if route.watermark_ms is None:
        return now_ms
    return min(now_ms, route.watermark_ms + route.config.allowed_lateness_ms)


def _detect(
    gate: AnyGate,
    arms: Arms,
    now_ms: int,
    counts: Counts,
    p0: float | None,
    rate: float | None,
    slower_than: float | None = None,
) -> GuardVerdict | None:
    """Feed the candidate's new (hits, trials) since the last evaluation to the gate's detector.

    Counts come from the route's time buckets: everything from the bucket of the previous
    update on, minus what that update already took. ``rate`` (the window's estimate) only
    serves the "about how many more calls" estimate of a suspect gate. With ``slower_than``
    the hits are the calls slower than it (read from the buckets' latency sketches).
    """
    route = arms.candidate
    if route is None or not _detected(gate):
        return None
    bank, key, log_a = _slot(gate, arms)
    det = bank.get(key)
    now_ms = _event_now(route, now_ms)

    def read(start: int, end: int) -> tuple[int, int]:
        if slower_than is not None:
            return route.calls_slower_than(slower_than, start, end)
        return counts(route.window_between(start, end))

    if det.at_ms is not None and now_ms < det.at_ms:
        return _verdict(det.log_stat, log_a, None)
    bucket = route.config.fine.bucket_ms
    if det.cursor_ms is None:
        det.cursor_ms = arms.release_start_ms - arms.release_start_ms % bucket
    if det.cursor_ms > now_ms:
        # Judged at an event time before the release started (a worker catching up on a backlog
        # older than the ticket it holds): nothing of the release to detect yet.
        return _verdict(det.log_stat, log_a, None)
    hits, trials = det.delta(*read(det.cursor_ms, now_ms + 1))
    if p0 is not None:
        det.update(hits, trials, min(p0, 0.999), now_ms, log_a)
    det.cursor_ms = now_ms - now_ms % bucket
    det.seen = read(det.cursor_ms, now_ms + 1)
    more = None
    if p0 is not None and rate is not None and det.log_stat < log_a:
        gain = expected_log_lr(rate, min(p0, 0.999))
        if gain > 0:
            have = max(det.log_stat, 0.0)
            more = math.ceil((log_a - have) / gain)
    return _verdict(det.log_stat, log_a, more)


def _detect_mean(
    gate: AnyGate, arms: Arms, now_ms: int, feed: Callable[[MeanDetector, RouteState, int, float], None], gain: float
) -> GuardVerdict | None:
    """Run ``feed`` (new tasks or scores into the gate's mean detector) at event time ``now_ms``.

    ``gain`` (evidence per observation at the window's level) only serves the "about how
    many more" estimate of a suspect gate.
    """
    route = arms.candidate
    if route is None or not _detected(gate):
        return None
    bank, key, log_a = _slot(gate, arms)
    det = bank.get_mean(key)
    now_ms = _event_now(route, now_ms)
    if now_ms >= arms.release_start_ms and (det.at_ms is None or now_ms >= det.at_ms):
        feed(det, route, now_ms, log_a)
    more = None
    if det.log_stat < log_a and gain > 0:
        more = math.ceil((log_a - max(det.log_stat, 0.0)) / gain)
    return _verdict(det.log_stat, log_a, more)


def _verdict(log_stat: float, log_a: float, more: int | None) -> GuardVerdict:
    shown = max(log_stat, -1e9)
    return GuardVerdict(log_stat >= log_a, shown, min(1.0, math.exp(-shown)) if shown > -700 else 1.0, log_a, more)


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
    suspect: bool = False,
) -> GateResult:
    state: GateState = "insufficient" if needed else ("breached" if breached else "suspect" if suspect else "healthy")
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
        evidence if state in ("breached", "suspect") else (),
        breach_ts,
        guard,
        detail,
    )


def _confirm(over: bool, guard: GuardVerdict | None) -> tuple[bool, bool]:
    """(breached, suspect): with a detector, over the threshold is only suspect until the detector alarms."""
    if guard is None:
        return over, False
    return over and guard.significant, over and not guard.significant


def _schema_counts(stats: WindowStats) -> tuple[int, int]:
    return stats.schema_failed, stats.schema_checked


def _review_counts(stats: WindowStats) -> tuple[int, int]:
    return stats.rejected, stats.reviews


def _block_counts(stats: WindowStats) -> tuple[int, int]:
    return stats.safety_blocked, stats.calls


def _error_counts(stats: WindowStats) -> tuple[int, int]:
    return stats.errors, stats.calls


def _schema(gate: SchemaFailureGate, arms: Arms, now_ms: int) -> GateResult:
    cand = arms.candidate.schema_failures if arms.candidate else None
    ctrl = arms.control.schema_failures if arms.control else None
    k_c, n_c = _tail(cand, gate.window_calls)
    k_b, n_b = _tail(ctrl, gate.window_calls)
    needed = _needed(gate.min_samples, candidate=n_c, control=n_b)
    rate_c = k_c / n_c if n_c else None
    rate_b = k_b / n_b if n_b else None
    over = rate_c is not None and rate_b is not None and rate_c > gate.rate_above
    detail = ""
    if over and rate_b is not None and rate_b >= gate.control_rate_below:
        over, detail = False, "the control fails schema validation too: not the candidate's regression"
    # The null is the ticket's: the candidate's rate is at most rate_above.
    guard = _detect(gate, arms, now_ms, _schema_counts, gate.rate_above, rate_c)
    breached, suspect = _confirm(over, guard)
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
        suspect,
    )


def _reviews(gate: ReviewRejectionGate, arms: Arms, now_ms: int) -> GateResult:
    k_c, n_c = _tail(arms.candidate.review_rejections if arms.candidate else None, gate.window_reviews)
    k_b, n_b = _tail(arms.control.review_rejections if arms.control else None, gate.window_reviews)
    needed = _needed(gate.min_samples, candidate=n_c, control=n_b)
    rate_c = k_c / n_c if n_c else None
    rate_b = k_b / n_b if n_b else None
    over = rate_c is not None and rate_b is not None and rate_c - rate_b >= gate.worse_by_at_least
    # The null is the ticket's: the candidate is at most worse_by_at_least worse than the control.
    ucb = _control_ucb(arms.control, now_ms, _review_counts)
    p0 = None if ucb is None else ucb + gate.worse_by_at_least
    guard = _detect(gate, arms, now_ms, _review_counts, p0, rate_c)
    breached, suspect = _confirm(over, guard)
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
        suspect=suspect,
    )


def _safety(gate: SafetyBlocksGate, arms: Arms, now_ms: int) -> GateResult:
    k_c, n_c = _tail(arms.candidate.safety_blocks if arms.candidate else None, gate.window_requests)
    k_b, n_b = _tail(arms.control.safety_blocks if arms.control else None, gate.window_requests)
    needed = _needed(gate.min_samples, candidate=n_c, control=n_b)
    rate_c = k_c / n_c if n_c else None
    rate_b = k_b / n_b if n_b else None
    floor = gate.control_rate_floor if gate.control_rate_floor is not None else 1 / gate.window_requests
    threshold = None if rate_b is None else gate.multiplier_at_least * max(rate_b, floor)
    over = rate_c is not None and threshold is not None and rate_c >= threshold
    # The null is the ticket's: the candidate blocks less than multiplier_at_least x the control (floored).
    ucb = _control_ucb(arms.control, now_ms, _block_counts)
    p0 = None if ucb is None else gate.multiplier_at_least * max(ucb, floor)
    guard = _detect(gate, arms, now_ms, _block_counts, p0, rate_c)
    breached, suspect = _confirm(over, guard)
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
        suspect=suspect,
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
    over = observed is not None and threshold is not None and observed > threshold
    detail = ""
    control_now = ctrl.latency_quantile(q, window, now_ms) if ctrl else None
    if over and control_now is not None and threshold is not None and control_now > threshold:
        over, detail = False, "the control route is as slow: a provider-wide slowdown, not the candidate"
    guard = None
    if threshold is not None and cand is not None:
        # The null is the ticket's: "p95 above 2x the baseline p95" is "more than 5% of calls slower
        # than 2x the baseline p95", so at most 1 - q of the candidate's calls are slower than the
        # threshold; or, when the control's own p95 is over the threshold too, no more than the
        # control's share (a provider-wide slowdown is not the candidate's regression).
        p0 = 1 - q
        if control_now is not None and control_now > threshold:
            ucb = _control_ucb(ctrl, now_ms, _error_counts, slower_than=threshold)
            p0 = max(p0, ucb if ucb is not None else 0.0)
        rate = None
        if over:  # the window's share of slow calls, for the "about how many more" estimate
            slow, n = cand.calls_slower_than(threshold, now_ms - window, now_ms)
            rate = slow / n if n else None
        guard = _detect(gate, arms, now_ms, _error_counts, p0, rate, slower_than=threshold)
    breached, suspect = _confirm(over, guard)
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
        guard=guard,
        detail=detail,
        suspect=suspect,
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
    over = observed is not None and threshold is not None and observed > threshold
    control = arms.control.tasks.cost_per_success_usd if arms.control else None
    guard = None
    if threshold is not None and threshold > 0 and tasks is not None:
        allowed = threshold
        start = arms.release_start_ms

        def feed(det: MeanDetector, route: RouteState, at_ms: int, log_a: float) -> None:
            # The null is the ticket's: cost per success at most multiplier_above x the estimate.
            bucket = route.config.fine.bucket_ms
            since = route.window_between(start - start % bucket, at_ms + 1).completed if det.seen_tasks is None else 0
            feed_tasks(det, route.tasks, since, allowed, at_ms, log_a)

        guard = _detect_mean(gate, arms, now_ms, feed, cost_gain(tasks, allowed, 200) if over else 0.0)
    breached, suspect = _confirm(over, guard)
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
        guard=guard,
        suspect=suspect,
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

    guard = _threshold_guard(gate, arms, now_ms, observed if crosses(observed) else None)
    breached, suspect = _confirm(crosses(observed), guard)
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
        suspect,
    )


def _threshold_guard(gate: ThresholdGate, arms: Arms, now_ms: int, over: float | None) -> GuardVerdict | None:
    """The detector of a guarded threshold gate, its null the ticket's limit; ``over`` the window's value if over it."""
    cand = arms.candidate
    if gate.metric == "p95_latency_ms" and cand is not None:
        # At most 5% of calls slower than the limit: "p95 above the limit" as a share of slow calls.
        rate = None
        if over is not None:
            slow, n = cand.calls_slower_than(gate.value, now_ms - int(gate.window), now_ms)
            rate = slow / n if n else None
        return _detect(gate, arms, now_ms, _error_counts, 0.05, rate, slower_than=gate.value)
    if gate.metric == "avg_quality_score" and cand is not None:
        # Mean quality at least the floor, scores assumed at most quality_cap(floor).
        floor, cap, start = gate.value, quality_cap(gate.value), arms.release_start_ms
        gain = 0.0
        if over is not None:  # the window's evidence rate, for the "about how many more" estimate
            stats = cand.window(int(gate.window), now_ms)
            gain = quality_gain(stats.quality_n, stats.quality_sum, stats.quality_sq, floor, cap)

        def feed(det: MeanDetector, route: RouteState, at_ms: int, log_a: float) -> None:
            feed_quality(det, route, start, floor, cap, at_ms, log_a)

        return _detect_mean(gate, arms, now_ms, feed, gain)
    return _detect(gate, arms, now_ms, _error_counts, gate.value, over if gate.metric == "error_rate" else None)


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
