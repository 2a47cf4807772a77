"""Safety blocks: safety or policy blocks rise against the control on comparable requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Final, Literal

from rollwatch.gates.kinds.common import Arms, confirm, control_ucb, detect, evidence_refs, needed, result, tail
from rollwatch.gates.kinds.spec import GateKind, Issue, WindowNeed, guard_alpha
from rollwatch.gates.result import GateResult
from rollwatch.tickets.fieldtypes import Count, Multiplier, NotNull, RateBelow
from rollwatch.tickets.gatebase import GuardedGate
from rollwatch.tickets.wording import num, pct

if TYPE_CHECKING:
    from rollwatch.streams.bucket import WindowStats
    from rollwatch.tickets.model import Estimates, Ticket

__all__ = ["KIND", "SafetyBlocksGate"]


class SafetyBlocksGate(GuardedGate):
    """Safety or policy blocks rise against the control on comparable requests.

    Breached when the candidate's ``safety_blocked`` rate is at least
    ``multiplier_at_least`` times the control's, each over the arm's last
    ``window_requests`` calls. The control rate is taken as at least
    ``control_rate_floor`` (absent: 1 / ``window_requests``) so a single block against
    zero control blocks is not an infinite ratio. ``min_samples``: calls each arm needs.
    """

    kind: Literal["safety_blocks"]
    window_requests: Count
    multiplier_at_least: Multiplier
    control_rate_floor: Annotated[RateBelow | None, NotNull] = None


def _counts(stats: WindowStats) -> tuple[int, int]:
    return stats.safety_blocked, stats.calls


def _floor(gate: SafetyBlocksGate) -> float:
    return gate.control_rate_floor if gate.control_rate_floor is not None else 1 / gate.window_requests


def _detected(gate: SafetyBlocksGate) -> bool:
    return guard_alpha(gate) is not None


def _evaluate(gate: SafetyBlocksGate, arms: Arms, now_ms: int) -> GateResult:
    k_c, n_c = tail(arms.candidate.safety_blocks if arms.candidate else None, gate.window_requests)
    k_b, n_b = tail(arms.control.safety_blocks if arms.control else None, gate.window_requests)
    missing = needed(gate.min_samples, candidate=n_c, control=n_b)
    rate_c = k_c / n_c if n_c else None
    rate_b = k_b / n_b if n_b else None
    floor = _floor(gate)
    threshold = None if rate_b is None else gate.multiplier_at_least * max(rate_b, floor)
    over = rate_c is not None and threshold is not None and rate_c >= threshold
    # The null is the ticket's: the candidate blocks less than multiplier_at_least x the control (floored).
    guard = None
    if _detected(gate):
        ucb = control_ucb(arms.control, now_ms, _counts)
        p0 = None if ucb is None else gate.multiplier_at_least * max(ucb, floor)
        guard = detect(gate, arms, now_ms, _counts, p0, rate_c)
    breached, suspect = confirm(over, guard)
    return result(
        gate,
        "safety_block_rate",
        breached,
        rate_c,
        threshold,
        rate_b,
        f"last {gate.window_requests} calls",
        {"candidate": n_c, "control": n_b},
        missing,
        evidence_refs(arms.candidate, "safety_block"),
        guard,
        suspect=suspect,
    )


def _windows(gate: SafetyBlocksGate) -> tuple[WindowNeed, ...]:
    return (WindowNeed("safety_window", "window_requests", gate.window_requests),)


def _explain(ticket: Ticket, gate: SafetyBlocksGate) -> tuple[str, str]:
    return (
        f"the candidate's safety/policy block rate over its last {gate.window_requests:,} requests is at least "
        f"{num(gate.multiplier_at_least)}x the control's over its last {gate.window_requests:,} comparable "
        f"requests (the control's rate counted as at least {pct(_floor(gate))})",
        f"at least {gate.min_samples:,} requests per arm",
    )


def _check(gate: SafetyBlocksGate, estimates: Estimates | None) -> Iterator[Issue]:
    """Nothing beyond the window rule every counted kind gets: the floor is valid on its own."""
    return iter(())


KIND: Final = GateKind("safety_blocks", SafetyBlocksGate, _evaluate, _windows, _explain, _check, _detected)
