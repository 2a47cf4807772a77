"""Judging one gate: look its kind up in :data:`rollwatch.gates.kinds.KINDS` and run its evaluator.

The evaluators themselves live with their kind (see :mod:`rollwatch.gates.kinds`); what
they share (the arms, the change detector, the result) is in
:mod:`rollwatch.gates.kinds.common`. What stays here needs the whole ticket: the detector
bank that splits the ticket's alpha over its detected gates.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from rollwatch.gates.bank import DetectorBank
from rollwatch.gates.kinds import KINDS, AnyGate
from rollwatch.gates.kinds.common import Arms
from rollwatch.gates.kinds.spec import guard_alpha
from rollwatch.gates.result import GateResult
from rollwatch.tickets.model import Ticket

__all__ = ["SEGMENT_SHARES", "Arms", "detected", "detector_bank", "evaluate_gate"]

SEGMENT_SHARES: Final = 8
"""A ``by_segment`` gate's share of alpha is split over this many segments (the engine's MAX_SEGMENTS)."""


def detected(gate: AnyGate) -> bool:
    """Whether the gate's guard runs a change detector (its kind decides)."""
    return KINDS[gate.kind].detected(gate)


def detector_bank(ticket: Ticket) -> DetectorBank:
    """A fresh bank for ``ticket``: its alpha (the strictest guard's), split over its detectors.

    A ``by_segment`` gate's share is split again over :data:`SEGMENT_SHARES` segments, one
    per segment it may judge, so the ticket's family-wise bound holds whatever segments appear.
    """
    guarded = [g for g in ticket.gates if detected(g)]
    alphas = [a for a in (guard_alpha(g) for g in guarded) if a is not None]
    horizon = int(ticket.canary.duration)
    return DetectorBank(min(alphas, default=0.05), max(len(guarded), 1), horizon, SEGMENT_SHARES)


def evaluate_gate(gate: AnyGate, arms: Arms, now_ms: int) -> GateResult:
    """The gate's state at ``now_ms`` (event time).

    Arms without a detector bank get a fresh one (each evaluation then starts its
    detector at the release start), so callers outside the engine need not build one.
    """
    if arms.detectors is None and detected(gate):
        arms = replace(arms, detectors=detector_bank(arms.ticket))
    return KINDS[gate.kind].evaluate(gate, arms, now_ms)
