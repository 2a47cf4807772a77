"""Seeded synthetic traces through the engine: every injected regression is caught, and
identical arms over 20 seeds give no rollback."""

from __future__ import annotations

import pytest

from rollwatch.replay import replay_events
from rollwatch.synth import REGRESSIONS, Regression, Traffic, generate
from rollwatch.tickets.model import Ticket

HOUR = 3_600_000
# Which gate an injected regression must trip (the example ticket's names).
EXPECTED = {
    "schema": "json-failures",
    "latency": "p95-latency",
    "cost": "cost-per-task",
    "reviews": "review-rejections",
    "safety": "safety-blocks",
    "complaints": "ai-complaints",
    "errors": "error-rate",
    "quality": "quality-floor",
}


def run(ticket: Ticket, regression: Regression, seed: int) -> list[tuple[str, str, int]]:
    traffic = Traffic(
        regression=regression,
        seed=seed,
        duration_ms=2 * HOUR,
        onset_ms=HOUR,
        calls_per_second=5,
        candidate_share=0.3,
    )
    chunks = [list(generate(traffic))]
    report = replay_events(ticket, chunks)
    return [
        (e.decision.gate, e.decision.kind, e.at_ms - traffic.start_ms - traffic.onset_ms)
        for e in report.timeline
        if e.decision.kind in ("rollback", "escalate")
    ]


@pytest.mark.parametrize("regression", REGRESSIONS)
def test_every_injected_regression_is_caught(ticket: Ticket, regression: Regression) -> None:
    decisions = run(ticket, regression, seed=101)
    gates = {gate for gate, _, _ in decisions}
    assert EXPECTED[regression] in gates, decisions
    assert all(after >= 0 for _, _, after in decisions), f"fired before the onset: {decisions}"


@pytest.mark.parametrize("seed", range(20))
def test_identical_arms_never_roll_back(ticket: Ticket, seed: int) -> None:
    assert run(ticket, "none", seed) == []  # promotions are fine: identical arms deserve them


def test_provider_outage_does_not_trip_relative_gates(ticket: Ticket) -> None:
    decisions = run(ticket, "provider_outage", seed=5)
    relative = {"json-failures", "review-rejections", "safety-blocks", "p95-latency"}
    assert not relative & {gate for gate, _, _ in decisions}, decisions


# Rates of the synthetic traffic (rollwatch/synth.py) before and after the onset, and what the
# example ticket allows: the null each guarded gate's detector tests (control-relative nulls
# at the control's rate plus the ticket's margin, or times its multiplier).
MID_RELEASE = {
    # regression: (gate, rate after, null, candidate observations per second)
    "schema": ("json-failures", 0.06, 0.01, 1.5),
    "reviews": ("review-rejections", 0.23, 0.08 + 0.05, 0.75),
    "safety": ("safety-blocks", 0.03, 2 * 0.002, 1.5),
    "errors": ("error-rate", 0.12, 0.05, 1.5),
}


@pytest.mark.parametrize("regression", sorted(MID_RELEASE))
def test_a_regression_two_hours_in_is_caught_within_its_bound_budget(ticket: Ticket, regression: Regression) -> None:
    import math

    from rollwatch.gates.detector import ODDS_RATIOS, info_bound
    from rollwatch.gates.evaluate import detector_bank
    from rollwatch.tickets.gates import MsprtGuard

    gate, after, null, per_second = MID_RELEASE[regression]
    guarded = ticket.gate(gate).model_copy(update={"guard": MsprtGuard(method="msprt", alpha=0.01)})
    ticket = ticket.model_copy(update={"gates": tuple(guarded if g.name == gate else g for g in ticket.gates)})
    bank = detector_bank(ticket)
    # The information bound for alpha, scaled by what the release-wide guarantee costs
    # (log A over log 1/alpha) and what not knowing the effect's size costs (log of the
    # mixture's size), with half again for noise and the control's confidence margin,
    # plus two minutes of judging grid.
    log_a = bank.log_a(per_segment=ticket.gate(gate).by_segment) + math.log(len(ODDS_RATIOS))
    calls = info_bound(after, null, bank.alpha) * log_a / math.log(1 / bank.alpha) * 1.5
    budget_ms = calls / per_second * 1000 + 2 * 60_000
    traffic = Traffic(
        regression=regression, seed=17, duration_ms=2 * HOUR + HOUR // 2, onset_ms=2 * HOUR,
        calls_per_second=5, candidate_share=0.3,
    )  # fmt: skip
    report = replay_events(ticket, [list(generate(traffic))])
    onset = traffic.start_ms + traffic.onset_ms
    fired = [e.at_ms - onset for e in report.timeline if e.decision.gate == gate and e.decision.kind != "promote"]
    assert fired, f"{gate} never fired"
    assert 0 <= fired[0] <= budget_ms, (fired[0], budget_ms)
