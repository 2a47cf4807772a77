"""Seed 2's automated promotion, as a pseudo-gate the judge reads.

Under the ``doubling`` rule, the candidate's metric is compared with the control's
over the rule's window. At ``promote_at_ratio`` (0.99: within 1%) or better, it is
healthy and the judge may double the rollout once ``canary.hold`` has passed. Below
``rollback_below_ratio`` (0.95) it is breached, and the judge sets the rollout to 0.
In between, it holds. Under the ``steps`` rule, promotion needs only the gates to be
healthy, so this reports healthy.
"""

from __future__ import annotations

from rollwatch.gates.evaluate import Arms
from rollwatch.gates.result import GateResult, GateState
from rollwatch.streams.route_state import RouteState
from rollwatch.tickets.durations import format_duration
from rollwatch.tickets.model import DoublingPromotion, Ticket

__all__ = ["evaluate_promotion"]


def _metric(route: RouteState | None, metric: str, window_ms: int, now_ms: int) -> tuple[float | None, int]:
    if route is None:
        return None, 0
    stats = route.window(window_ms, now_ms)
    if metric == "avg_quality_score":
        return stats.mean_quality, stats.quality_n
    if metric == "task_success_rate":
        return stats.success_rate, stats.completed
    approved = stats.reviews - stats.rejected
    return (approved / stats.reviews if stats.reviews else None), stats.reviews


def evaluate_promotion(ticket: Ticket, arms: Arms, now_ms: int) -> GateResult:
    rule = ticket.canary.promotion
    if not isinstance(rule, DoublingPromotion):
        return GateResult("promotion", "promotion", "gates", "healthy", None, None, None, "all gates", {})
    window = int(rule.window)
    cand, n_c = _metric(arms.candidate, rule.metric, window, now_ms)
    ctrl, n_b = _metric(arms.control, rule.metric, window, now_ms)
    needed = {arm: rule.min_samples - n for arm, n in (("candidate", n_c), ("control", n_b)) if n < rule.min_samples}
    ratio = cand / ctrl if cand is not None and ctrl else None
    state: GateState
    detail = ""
    if needed or ratio is None:
        state = "insufficient"
    elif ratio < rule.rollback_below_ratio:
        state = "breached"
    elif ratio >= rule.promote_at_ratio:
        state = "healthy"
    else:
        state, detail = "insufficient", "between the rollback and promotion ratios: hold"
    return GateResult(
        "promotion",
        "promotion",
        f"{rule.metric}_ratio",
        state,
        ratio,
        rule.promote_at_ratio,
        ctrl,
        format_duration(window),
        {"candidate": n_c, "control": n_b},
        needed,
        detail=detail,
    )
