"""What every gate evaluator shares: the arms it reads, the change detector, and the result.

Every comparison states its direction: ``>`` where the name says ``above``, ``>=`` for
``at_least``, and ``<`` for ``below``. The seed sketch's ``current > threshold``
for quality is a bug, so quality thresholds compare ``below``.

Relative gates (schema failures, review rejections, safety blocks, latency against
the control's baseline, drift) do not blame the candidate for what the control
suffers too. When both arms degrade, the gate reports healthy and says why in
``detail``, because a provider-wide incident is not the candidate's regression. An
absolute threshold (seed 2's list) still fires, because it is absolute; its detail
notes when the control breaches it too.

The per-route state is only read through the objects handed in, so this module (and
the kinds built on it) import :mod:`rollwatch.streams` for types only: loading a ticket
does not pay for the stream machinery.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

from rollwatch.gates.bank import DetectorBank
from rollwatch.gates.detector import expected_log_lr
from rollwatch.gates.mean_detector import MeanDetector
from rollwatch.gates.result import EvidenceRef, GateResult, GateState
from rollwatch.gates.sequential import GuardVerdict

if TYPE_CHECKING:
    from rollwatch.gates.kinds import AnyGate
    from rollwatch.streams.bucket import WindowStats
    from rollwatch.streams.count_window import CountWindow
    from rollwatch.streams.evidence import Evidence, EvidenceKind
    from rollwatch.streams.route_state import RouteState
    from rollwatch.tickets.gatebase import GateBase
    from rollwatch.tickets.model import Ticket

__all__ = [
    "CONTROL_SPAN_MS",
    "MAX_EVIDENCE",
    "Arms",
    "Counts",
    "confirm",
    "control_ucb",
    "detect",
    "detect_mean",
    "evidence_refs",
    "needed",
    "result",
    "tail",
]

MAX_EVIDENCE: Final = 20
CONTROL_SPAN_MS: Final = 15 * 60_000
"""The control's rate behind a two-arm null is measured over this trailing span (with a margin)."""

Counts: TypeAlias = "Callable[[WindowStats], tuple[int, int]]"
"""(hits, trials) of one Bernoulli stream in a window: schema failures among checked calls, ..."""


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


def tail(window: CountWindow | None, size: int) -> tuple[int, int]:
    """(set, held) among the newest ``size`` observations of a count window."""
    if window is None:
        return 0, 0
    if size >= window.size or window.n <= size:
        return window.count, window.n
    newest = window.flags()[-size:]
    return sum(newest), len(newest)


def evidence_refs(route: RouteState | None, *kinds: EvidenceKind) -> tuple[EvidenceRef, ...]:
    if route is None:
        return ()
    items: list[Evidence] = []
    for kind in kinds:
        items.extend(route.evidence_items(kind))
    items.sort(key=lambda e: e.ts_ms, reverse=True)
    return tuple(EvidenceRef(e.kind, e.event_id, e.trace_id, e.ts_ms) for e in items[:MAX_EVIDENCE])


def _ucb(hits: int, n: int) -> float:
    p = hits / n
    return p + 2 * math.sqrt(max(p * (1 - p), 1 / n) / n) + 1 / n


def control_ucb(
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
    if slower_than is not None:  # the share of calls slower than this (latency)
        hits, n = route.calls_slower_than(slower_than, now_ms + 1 - CONTROL_SPAN_MS, now_ms + 1)
    else:
        hits, n = counts(route.window(CONTROL_SPAN_MS, now_ms + 1))
    return _ucb(hits, n) if n > 0 else None


def _key(gate: GateBase, arms: Arms) -> str:
    return gate.name if arms.segment is None else f"{gate.name}@{arms.segment}"


def _event_now(route: RouteState, now_ms: int) -> int:
    """The detector moves in event time: a wall-clock judgement ahead of the newest event
    (a worker catching up on a backlog) must not move its cursor past calls still to come."""
    if route.watermark_ms is None:
        return now_ms
    return min(now_ms, route.watermark_ms + route.config.allowed_lateness_ms)


def detect(
    gate: GateBase,
    arms: Arms,
    now_ms: int,
    counts: Counts,
    p0: float | None,
    rate: float | None,
    slower_than: float | None = None,
) -> GuardVerdict | None:
    """Feed the candidate's new (hits, trials) since the last evaluation to the gate's detector.

    Only for gates whose kind says ``detected``; the caller checks. Counts come from the
    route's time buckets: everything from the bucket of the previous update on, minus what
    that update already took. ``rate`` (the window's estimate) only serves the "about how
    many more calls" estimate of a suspect gate. With ``slower_than`` the hits are the
    calls slower than it, counted from the buckets' latency sketches (``counts`` unused).
    """
    route, bank = arms.candidate, arms.detectors
    if route is None or bank is None:
        return None
    det = bank.get(_key(gate, arms))
    log_a = bank.log_a(per_segment=gate.by_segment)
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


MeanFeed: TypeAlias = "Callable[[MeanDetector, RouteState, int, float], None]"
"""Folds what is new on the candidate route into a mean detector: (detector, route, event time, log A)."""


def detect_mean(gate: GateBase, arms: Arms, now_ms: int, feed: MeanFeed, gain: float) -> GuardVerdict | None:
    """Run ``feed`` (new tasks or scores into the gate's mean detector) at event time ``now_ms``.

    Only for gates whose kind says ``detected``. ``gain`` (evidence per observation at the
    window's level) only serves the "about how many more" estimate of a suspect gate.
    """
    route, bank = arms.candidate, arms.detectors
    if route is None or bank is None:
        return None
    det = bank.get_mean(_key(gate, arms))
    log_a = bank.log_a(per_segment=gate.by_segment)
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


def needed(min_samples: int, **have: int) -> dict[str, int]:
    return {arm: min_samples - n for arm, n in have.items() if n < min_samples}


def result(
    gate: AnyGate,
    metric: str,
    breached: bool,
    observed: float | None,
    threshold: float | None,
    control: float | None,
    window: str,
    samples: dict[str, int],
    missing: dict[str, int],
    evidence: tuple[EvidenceRef, ...] = (),
    guard: GuardVerdict | None = None,
    detail: str = "",
    suspect: bool = False,
) -> GateResult:
    state: GateState = "insufficient" if missing else ("breached" if breached else "suspect" if suspect else "healthy")
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
        missing,
        evidence if state in ("breached", "suspect") else (),
        breach_ts,
        guard,
        detail,
    )


def confirm(over: bool, guard: GuardVerdict | None) -> tuple[bool, bool]:
    """(breached, suspect): with a detector, over the threshold is only suspect until the detector alarms."""
    if guard is None:
        return over, False
    return over and guard.significant, over and not guard.significant
