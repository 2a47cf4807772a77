"""Review rejections: human reviewers reject the candidate's outputs more often than the control's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, Literal

from rollwatch.gates.kinds.common import Arms, confirm, control_ucb, detect, evidence_refs, needed, result, tail
from rollwatch.gates.kinds.spec import GateKind, Issue, WindowNeed, guard_alpha
from rollwatch.gates.result import GateResult
from rollwatch.tickets.fieldtypes import Count, RateMargin
from rollwatch.tickets.gatebase import GuardedGate
from rollwatch.tickets.wording import num

if TYPE_CHECKING:
    from rollwatch.streams.bucket import WindowStats
    from rollwatch.tickets.model import Estimates, Ticket

__all__ = ["KIND", "ReviewRejectionGate"]


class ReviewRejectionGate(GuardedGate):
    """Human reviewers reject the candidate's outputs more often than the control's.

    Breached when candidate rejection rate minus control rejection rate, each over the
    arm's last ``window_reviews`` review events, is at least ``worse_by_at_least``.
    ``min_samples``: reviews each arm needs.
    """

    kind: Literal["review_rejection"]
    window_reviews: Count
    worse_by_at_least: RateMargin


def _counts(stats: WindowStats) -> tuple[int, int]:
    return stats.rejected, stats.reviews


def _detected(gate: ReviewRejectionGate) -> bool:
    return guard_alpha(gate) is not None


def _evaluate(gate: ReviewRejectionGate, arms: Arms, now_ms: int) -> GateResult:
    k_c, n_c = tail(arms.candidate.review_rejections if arms.candidate else None, gate.window_reviews)
    k_b, n_b = tail(arms.control.review_rejections if arms.control else None, gate.window_reviews)
    missing = needed(gate.min_samples, candidate=n_c, control=n_b)
    rate_c = k_c / n_c if n_c else None
    rate_b = k_b / n_b if n_b else None
    over = rate_c is not None and rate_b is not None and rate_c - rate_b >= gate.worse_by_at_least
    # The null is the ticket's: the candidate is at most worse_by_at_least worse than the control.
    guard = None
    if _detected(gate):
        ucb = control_ucb(arms.control, now_ms, _counts)
        p0 = None if ucb is None else ucb + gate.worse_by_at_least
        guard = detect(gate, arms, now_ms, _counts, p0, rate_c)
    breached, suspect = confirm(over, guard)
    threshold = None if rate_b is None else rate_b + gate.worse_by_at_least
    return result(
        gate,
        "review_rejection_rate",
        breached,
        rate_c,
        threshold,
        rate_b,
        f"last {gate.window_reviews} reviews",
        {"candidate": n_c, "control": n_b},
        missing,
        evidence_refs(arms.candidate, "rejected_review"),
        guard,
        suspect=suspect,
    )


def _windows(gate: ReviewRejectionGate) -> tuple[WindowNeed, ...]:
    return (WindowNeed("review_window", "window_reviews", gate.window_reviews),)


def _explain(ticket: Ticket, gate: ReviewRejectionGate) -> tuple[str, str]:
    points = num(round(gate.worse_by_at_least * 100, 6))
    return (
        f"the candidate's human-review rejection rate over its last {gate.window_reviews:,} reviewed outputs "
        f"is at least {points} percentage points above the control's over its last {gate.window_reviews:,}",
        f"at least {gate.min_samples:,} reviews per arm",
    )


def _check(gate: ReviewRejectionGate, estimates: Estimates | None) -> Iterator[Issue]:
    """Nothing beyond the window rule every counted kind gets: a margin is valid on its own."""
    return iter(())


KIND: Final = GateKind("review_rejection", ReviewRejectionGate, _evaluate, _windows, _explain, _check, _detected)
