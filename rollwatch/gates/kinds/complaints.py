"""Complaints: confirmed customer complaints about AI behaviour within one release window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, Literal

from rollwatch.gates.kinds.common import MAX_EVIDENCE, Arms, needed, result
from rollwatch.gates.kinds.spec import GateKind, Issue, WindowNeed
from rollwatch.gates.result import EvidenceRef, GateResult
from rollwatch.tickets.durations import format_duration, humanize_duration
from rollwatch.tickets.fieldtypes import Count
from rollwatch.tickets.gatebase import GateBase

if TYPE_CHECKING:
    from rollwatch.tickets.model import Estimates, Ticket

__all__ = ["KIND", "ComplaintsGate"]


class ComplaintsGate(GateBase):
    """Confirmed customer complaints about AI behaviour within one release window.

    Counts complaint events with ``confirmed`` true on the candidate arm within the
    ticket's ``canary.release_window``; with ``require_sample`` only those carrying an
    output ``sample``. ``min_samples``: candidate calls in the window (complaints about a
    route that served nothing are misattributed).
    """

    kind: Literal["complaints"]
    confirmed_at_least: Count
    require_sample: bool


def _evaluate(gate: ComplaintsGate, arms: Arms, now_ms: int) -> GateResult:
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
    return result(
        gate,
        "confirmed_complaints",
        breached,
        float(count),
        float(gate.confirmed_at_least),
        None,
        f"release window {format_duration(int(arms.ticket.canary.release_window))}",
        {"candidate": calls},
        needed(gate.min_samples, candidate=calls),
        evidence,
    )


def _windows(gate: ComplaintsGate) -> tuple[WindowNeed, ...]:
    """The complaint log (and, counting only complaints with a sample, the evidence kept) must hold the threshold.

    The count comes from the route's last ``complaint_times`` complaint times, or from
    the complaint evidence it keeps (``evidence_per_kind`` items) when a sample is
    required: a threshold above either could never be reached. Both are thresholds on
    complaints, not on calls, so ``min_samples`` (calls) is not bounded by them.
    """
    needs = [WindowNeed("complaint_times", "confirmed_at_least", gate.confirmed_at_least, bounds_min_samples=False)]
    if gate.require_sample:
        needs.append(
            WindowNeed("evidence_per_kind", "confirmed_at_least", gate.confirmed_at_least, bounds_min_samples=False)
        )
    return tuple(needs)


def _explain(ticket: Ticket, gate: ComplaintsGate) -> tuple[str, str]:
    sample = ", each with a matching output sample," if gate.require_sample else ""
    return (
        f"at least {gate.confirmed_at_least:,} confirmed customer complaints about the candidate{sample} "
        f"arrive within one release window ({humanize_duration(ticket.canary.release_window)})",
        f"at least {gate.min_samples:,} candidate call{'s' if gate.min_samples != 1 else ''} in that window",
    )


def _check(gate: ComplaintsGate, estimates: Estimates | None) -> Iterator[Issue]:
    """The threshold must be one the route can count to (its windows); nothing else relates its fields."""
    return iter(())


KIND: Final = GateKind("complaints", ComplaintsGate, _evaluate, _windows, _explain, _check)
