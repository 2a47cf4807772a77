"""Schema failures: candidate output fails schema validation although the control's rarely does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, Literal

from rollwatch.gates.kinds.common import Arms, confirm, detect, evidence_refs, needed, result, tail
from rollwatch.gates.kinds.spec import GateKind, Issue, WindowNeed, guard_alpha
from rollwatch.gates.result import GateResult
from rollwatch.tickets.fieldtypes import Count, RateAbove, RateBelow
from rollwatch.tickets.gatebase import GuardedGate
from rollwatch.tickets.wording import pct

if TYPE_CHECKING:
    from rollwatch.streams.bucket import WindowStats
    from rollwatch.tickets.model import Estimates, Ticket

__all__ = ["KIND", "SchemaFailureGate"]


class SchemaFailureGate(GuardedGate):
    """Candidate output fails schema validation although the control's rarely does.

    Rates count calls whose ``schema_valid`` is false among those with a verdict (not
    null), over each arm's last ``window_calls`` such calls. ``min_samples``: calls with a
    verdict each arm needs in its window.
    """

    kind: Literal["schema_failure"]
    window_calls: Count
    rate_above: RateAbove
    control_rate_below: RateBelow


def _counts(stats: WindowStats) -> tuple[int, int]:
    return stats.schema_failed, stats.schema_checked


def _detected(gate: SchemaFailureGate) -> bool:
    return guard_alpha(gate) is not None


def _evaluate(gate: SchemaFailureGate, arms: Arms, now_ms: int) -> GateResult:
    cand = arms.candidate.schema_failures if arms.candidate else None
    ctrl = arms.control.schema_failures if arms.control else None
    k_c, n_c = tail(cand, gate.window_calls)
    k_b, n_b = tail(ctrl, gate.window_calls)
    missing = needed(gate.min_samples, candidate=n_c, control=n_b)
    rate_c = k_c / n_c if n_c else None
    rate_b = k_b / n_b if n_b else None
    over = rate_c is not None and rate_b is not None and rate_c > gate.rate_above
    detail = ""
    if over and rate_b is not None and rate_b >= gate.control_rate_below:
        over, detail = False, "the control fails schema validation too: not the candidate's regression"
    # The null is the ticket's: the candidate's rate is at most rate_above.
    guard = detect(gate, arms, now_ms, _counts, gate.rate_above, rate_c) if _detected(gate) else None
    breached, suspect = confirm(over, guard)
    return result(
        gate,
        "schema_failure_rate",
        breached,
        rate_c,
        gate.rate_above,
        rate_b,
        f"last {gate.window_calls} calls",
        {"candidate": n_c, "control": n_b},
        missing,
        evidence_refs(arms.candidate, "schema_failure"),
        guard,
        detail,
        suspect,
    )


def _windows(gate: SchemaFailureGate) -> tuple[WindowNeed, ...]:
    return (WindowNeed("schema_window", "window_calls", gate.window_calls),)


def _explain(ticket: Ticket, gate: SchemaFailureGate) -> tuple[str, str]:
    n = f"{gate.min_samples:,}"
    return (
        f"the candidate's schema-validation failure rate over its last {gate.window_calls:,} calls is above "
        f"{pct(gate.rate_above)} while the control's is below {pct(gate.control_rate_below)}",
        f"at least {n} candidate calls and {n} control calls",
    )


def _check(gate: SchemaFailureGate, estimates: Estimates | None) -> Iterator[Issue]:
    if gate.control_rate_below > gate.rate_above:
        yield (
            ("control_rate_below",),
            f"must not exceed rate_above ({gate.rate_above:g}) or a candidate no worse than control could fire",
        )


KIND: Final = GateKind("schema_failure", SchemaFailureGate, _evaluate, _windows, _explain, _check, _detected)
