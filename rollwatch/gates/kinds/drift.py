"""Drift: a change-point detector sees the candidate's metric move while the control's holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Final, Literal, TypeAlias

from pydantic import Field

from rollwatch.gates.kinds.common import Arms, needed, result
from rollwatch.gates.kinds.spec import GateKind, Issue, WindowNeed
from rollwatch.gates.result import GateResult
from rollwatch.tickets.durations import PositiveDuration, format_duration, humanize_duration
from rollwatch.tickets.fieldtypes import Count, NotNull, StrictModel
from rollwatch.tickets.gatebase import Alpha, GateBase
from rollwatch.tickets.wording import num

if TYPE_CHECKING:
    from rollwatch.streams.route_state import RouteState
    from rollwatch.tickets.model import Estimates, Ticket

__all__ = [
    "KIND",
    "WORSE_DRIFT",
    "AdwinDetector",
    "Detector",
    "DriftGate",
    "DriftMetric",
    "KswinDetector",
    "PageHinkleyDetector",
]

WORSE_DRIFT: Final = {
    "latency": ("increase", "rising latency is the regression"),
    "quality": ("decrease", "falling quality is the regression"),
    "cost": ("increase", "rising cost is the regression"),
}


class AdwinDetector(StrictModel):
    type: Literal["adwin"]
    delta: Annotated[float, Field(gt=0, lt=1)]
    grace_period: Annotated[Count | None, NotNull] = None
    min_window_length: Annotated[Count | None, NotNull] = None


class PageHinkleyDetector(StrictModel):
    type: Literal["page_hinkley"]
    delta: Annotated[float, Field(ge=0)]
    threshold: Annotated[float, Field(gt=0)]
    alpha: Annotated[float | None, NotNull, Field(gt=0, le=1)] = None
    min_instances: Annotated[Count | None, NotNull] = None


class KswinDetector(StrictModel):
    type: Literal["kswin"]
    alpha: Alpha
    window_size: Annotated[Count | None, NotNull] = None
    stat_size: Annotated[Count | None, NotNull] = None


Detector = Annotated[AdwinDetector | PageHinkleyDetector | KswinDetector, Field(discriminator="type")]
DriftMetric: TypeAlias = Literal["latency", "quality", "cost"]


class DriftGate(GateBase):
    """A change-point detector sees the candidate's metric move while the control's holds.

    Metrics: ``latency`` = ``latency_ms``, ``quality`` = ``quality_score``, ``cost`` =
    ``cost_usd`` of calls. Breached when the detector on the candidate stream reports a
    drift in ``direction`` within the trailing ``window`` and the same detector on the
    control stream reported none in that window. ``min_samples``: observations each
    arm's detector needs before its verdict counts.
    """

    kind: Literal["drift"]
    metric: DriftMetric
    direction: Literal["increase", "decrease"]
    detector: Detector
    window: PositiveDuration


def _evaluate(gate: DriftGate, arms: Arms, now_ms: int) -> GateResult:
    window = int(gate.window)
    cand, ctrl = arms.candidate, arms.control
    n_c = cand.window(window, now_ms).calls if cand else 0
    n_b = ctrl.window(window, now_ms).calls if ctrl else 0
    missing = needed(gate.min_samples, candidate=n_c, control=n_b)

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
    return result(
        gate,
        f"{gate.metric}_drift",
        breached,
        after,
        None,
        before,
        format_duration(window),
        {"candidate": n_c, "control": n_b},
        missing,
        detail=detail,
    )


def _windows(gate: DriftGate) -> tuple[WindowNeed, ...]:
    """The route's drift detectors and minute buckets; no count window."""
    return ()


def _detector(gate: DriftGate) -> str:
    d = gate.detector
    if d.type == "adwin":
        return f"ADWIN (delta {num(d.delta)})"
    if d.type == "page_hinkley":
        return f"Page-Hinkley (delta {num(d.delta)}, threshold {num(d.threshold)})"
    return f"KSWIN (alpha {num(d.alpha)})"


def _explain(ticket: Ticket, gate: DriftGate) -> tuple[str, str]:
    moves = "rise" if gate.direction == "increase" else "fall"
    return (
        f"the {_detector(gate)} detector sees the candidate's {gate.metric} {moves} (drift) within the last "
        f"{humanize_duration(gate.window)} while the control's {gate.metric} shows no drift",
        f"at least {gate.min_samples:,} observations per arm",
    )


def _check(gate: DriftGate, estimates: Estimates | None) -> Iterator[Issue]:
    worse, why = WORSE_DRIFT[gate.metric]
    if gate.direction != worse:
        yield ("direction",), f"must be {worse} for {gate.metric}: {why}"
    detector = gate.detector
    if detector.type == "kswin" and (detector.stat_size or 30) >= (detector.window_size or 100):
        yield ("detector", "stat_size"), "must be smaller than window_size (30 and 100 when left out)"


KIND: Final = GateKind("drift", DriftGate, _evaluate, _windows, _explain, _check)
