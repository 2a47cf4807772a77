"""Cost per task: cost per successful task runs above the ticket's approved estimate.

Its change detector is the mean detector of :mod:`rollwatch.gates.mean_detector`, fed task
by task (:func:`rollwatch.gates.mean_guard.feed_tasks`): the null "cost per success at most
``multiplier_above`` x the estimate" is a mean of per-task increments at most zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, Literal

from rollwatch.gates.kinds.common import Arms, confirm, detect_mean, needed, result
from rollwatch.gates.kinds.spec import GateKind, Issue, WindowNeed, guard_alpha
from rollwatch.gates.mean_guard import cost_gain, feed_tasks
from rollwatch.gates.result import GateResult
from rollwatch.tickets.fieldtypes import Count, Multiplier
from rollwatch.tickets.gatebase import GuardedGate
from rollwatch.tickets.wording import num, usd

if TYPE_CHECKING:
    from rollwatch.gates.mean_detector import MeanDetector
    from rollwatch.streams.route_state import RouteState
    from rollwatch.tickets.model import Estimates, Ticket

__all__ = ["KIND", "CostPerTaskGate"]


class CostPerTaskGate(GuardedGate):
    """Cost per successful task runs above the ticket's approved estimate.

    Over the candidate's last ``window_tasks`` completed calls (``task_success`` not
    null): sum of ``cost_usd`` / count of ``task_success`` true, compared with
    ``multiplier_above`` x ``estimates.cost_per_successful_task_usd``. ``min_samples``:
    completed candidate tasks.
    """

    kind: Literal["cost_per_task"]
    window_tasks: Count
    multiplier_above: Multiplier


def _evaluate(gate: CostPerTaskGate, arms: Arms, now_ms: int) -> GateResult:
    tasks = arms.candidate.tasks if arms.candidate else None
    n = tasks.completions if tasks else 0
    estimate = arms.ticket.estimates.cost_per_successful_task_usd if arms.ticket.estimates else None
    missing = needed(gate.min_samples, candidate=n)
    if estimate is None:
        missing = missing or {"estimate": 1}
    observed = tasks.cost_per_success_usd if tasks else None
    threshold = None if estimate is None else gate.multiplier_above * estimate
    over = observed is not None and threshold is not None and observed > threshold
    control = arms.control.tasks.cost_per_success_usd if arms.control else None
    guard = None
    if _detected(gate) and threshold is not None and threshold > 0 and tasks is not None:
        allowed, start = threshold, arms.release_start_ms

        def feed(det: MeanDetector, route: RouteState, at_ms: int, log_a: float) -> None:
            # The null is the ticket's: cost per success at most multiplier_above x the estimate.
            # At the first update, the tasks completed since the release started.
            since = 0
            if det.seen_tasks is None:
                bucket = route.config.fine.bucket_ms
                since = route.window_between(start - start % bucket, at_ms + 1).completed
            feed_tasks(det, route.tasks, since, allowed, at_ms, log_a)

        guard = detect_mean(gate, arms, now_ms, feed, cost_gain(tasks, allowed, 200) if over else 0.0)
    breached, suspect = confirm(over, guard)
    return result(
        gate,
        "cost_per_successful_task_usd",
        breached,
        observed,
        threshold,
        control,
        f"last {gate.window_tasks} completed tasks",
        {"candidate": n},
        missing,
        guard=guard,
        suspect=suspect,
    )


def _detected(gate: CostPerTaskGate) -> bool:
    """A guarded cost gate runs the mean change detector on its per-task increments."""
    return guard_alpha(gate) is not None


def _windows(gate: CostPerTaskGate) -> tuple[WindowNeed, ...]:
    return (WindowNeed("task_window", "window_tasks", gate.window_tasks),)


def _explain(ticket: Ticket, gate: CostPerTaskGate) -> tuple[str, str]:
    estimate = ticket.estimates.cost_per_successful_task_usd if ticket.estimates else None
    approved = f" of {usd(estimate)} (so above {usd(estimate * gate.multiplier_above)})" if estimate else ""
    return (
        f"the candidate's cost per successful task over its last {gate.window_tasks:,} completed tasks is "
        f"above {num(gate.multiplier_above)}x the approved estimate{approved}",
        f"at least {gate.min_samples:,} completed tasks",
    )


def _check(gate: CostPerTaskGate, estimates: Estimates | None) -> Iterator[Issue]:
    if estimates is None:
        yield ("kind",), "needs estimates.cost_per_successful_task_usd to compare against"


KIND: Final = GateKind("cost_per_task", CostPerTaskGate, _evaluate, _windows, _explain, _check, _detected)
