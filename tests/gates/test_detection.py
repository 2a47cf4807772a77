"""Seeded synthetic traces through the engine: every injected regression is caught, and
identical arms over 20 seeds give no rollback."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
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


# Rates of the synthetic traffic (rollwatch/synth.py) before and after each regression, and what
# the example ticket allows: the null each guarded gate's detector tests. Each case gives the
# evidence per observation after the onset (nats), computed here from the distributions, and the
# time the ticket's own window needs to go over its threshold (the gate breaches when the window
# is over *and* the detector confirms). Candidate traffic: 5 calls/s x 0.3.
CALLS_S = 1.5
REVIEWS_S = CALLS_S * 0.5
CONTROL_15M = 5 * 0.7 * 900  # control calls in the detectors' 15-minute control span
GRID = 60  # s: the replay judges once a minute


def kl(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def ucb(p: float, n: float) -> float:
    """The evaluator's lenient margin on the control's rate: two standard errors plus 1/n."""
    return p + 2 * math.sqrt(max(p * (1 - p), 1 / n) / n) + 1 / n


def fill_s(before: float, after: float, threshold: float, window: float, per_s: float) -> float:
    """Seconds after the onset until a window of ``window`` observations averages past ``threshold``."""
    return (threshold - before) / (after - before) * window / per_s


def bet_growth(ys: np.ndarray) -> float:
    """max over bets in [0, 1) of mean log(1 + bet * y): the bounded-mean problem's information rate."""
    return max(float(np.mean(np.log1p(b * ys))) for b in np.linspace(0, 0.999, 1000))


def fan_growth(ys: np.ndarray) -> float:
    """max over bets of bet * E[Y] - psi(bet) * E[Y^2]: the best rate from sums (Fan's bound)."""
    mean, square = float(np.mean(ys)), float(np.mean(ys * ys))
    return max(float(b) * mean - (-math.log1p(-float(b)) - float(b)) * square for b in np.linspace(0, 0.999, 1000))


def _latency_case() -> tuple[float, float]:
    # Calls are lognormal(log 900 ms, 0.35); the regression triples them. The threshold is 2x the
    # control's p95; "slow" is slower than that. Null: at most 5% slow (the control's share is far
    # below, even with its margin).
    z95 = NormalDist().inv_cdf(0.95)
    slow_after = 1 - NormalDist().cdf(z95 + math.log(2 / 3) / 0.35)
    slow_healthy = 1 - NormalDist().cdf(z95 + math.log(2) / 0.35)
    null = max(0.05, ucb(slow_healthy, CONTROL_15M))
    # The window's p95 is over once more than 5% of its 30 minutes are slow.
    window_s = fill_s(slow_healthy, slow_after, 0.05, 30 * 60 * CALLS_S, CALLS_S)
    return kl(slow_after, null), window_s


def _cost_case() -> tuple[float, float]:
    # Tasks are single calls: cost ~ N(0.02, 0.002) after (2.5x), success unless error (0.5%) or
    # invalid (0.1%); allowed 1.25 x 0.012. Increments clipped at the detector's stated cap of 3.
    rng = np.random.default_rng(1)
    n = 20_000
    cost = np.maximum(rng.normal(0.02, 0.002, n), 0)
    success = (rng.random(n) >= 0.005) & (rng.random(n) >= 0.001)
    allowed = 1.25 * 0.012
    ys = np.minimum((cost - allowed * success) / allowed, 3.0)
    # The 1000-task window's cost per success passes the allowance once this share is new.
    share = (allowed * 0.994 - 0.008) / (0.02 - 0.008)
    return bet_growth(ys), share * 1000 / CALLS_S


def _quality_case() -> tuple[float, float]:
    # Scores ~ N(2.4, 0.4) clipped to [0, 5] after (4.2 before); the floor is 3.0, the detector's
    # assumed top score max(2 x 3.0, 1) = 6, so Y = (3 - q) / 3. Fed from per-minute sums: the
    # rate is Fan's (second moment), not the exact bet's.
    rng = np.random.default_rng(2)
    q = np.clip(rng.normal(2.4, 0.4, 20_000), 0, 5)
    ys = (3.0 - q) / 3.0
    return fan_growth(ys), fill_s(4.2, 2.4, 3.0, 60 * 60 * CALLS_S, CALLS_S)


@dataclass(frozen=True)
class Case:
    gate: str
    nats: float
    """Evidence per observation after the onset."""
    per_s: float
    """Observations per second on the candidate."""
    window_s: float
    """Seconds the ticket's window needs to go over its threshold."""
    sustained_s: float = 0.0


def mid_release_cases() -> dict[str, Case]:
    review_null = ucb(0.08, CONTROL_15M * 0.5) + 0.05
    latency_nats, latency_window = _latency_case()
    cost_nats, cost_window = _cost_case()
    quality_nats, quality_window = _quality_case()
    return {
        "schema": Case("json-failures", kl(0.06, 0.01), CALLS_S, fill_s(0.001, 0.06, 0.01, 200, CALLS_S)),
        "reviews": Case("review-rejections", kl(0.23, review_null), REVIEWS_S, fill_s(0, 0.15, 0.05, 200, REVIEWS_S)),
        "safety": Case(
            "safety-blocks", kl(0.03, 2 * ucb(0.002, CONTROL_15M)), CALLS_S, fill_s(0.002, 0.03, 0.004, 500, CALLS_S)
        ),
        "errors": Case("error-rate", kl(0.12, 0.05), CALLS_S, fill_s(0.005, 0.12, 0.05, 15 * 60 * CALLS_S, CALLS_S)),
        "latency": Case("p95-latency", latency_nats, CALLS_S, latency_window, sustained_s=30 * 60),
        "cost": Case("cost-per-task", cost_nats, CALLS_S, cost_window),
        "quality": Case("quality-floor", quality_nats, CALLS_S, quality_window),
    }


MID_RELEASE = ("schema", "reviews", "safety", "errors", "latency", "cost", "quality")


@pytest.mark.parametrize("regression", MID_RELEASE)
def test_a_regression_two_hours_in_is_caught_within_its_bound_budget(ticket: Ticket, regression: Regression) -> None:
    from rollwatch.gates.detector import ODDS_RATIOS
    from rollwatch.gates.evaluate import detector_bank
    from rollwatch.tickets.gates import MsprtGuard

    case = mid_release_cases()[regression]
    gate = ticket.gate(case.gate)
    if getattr(gate, "guard", None) is None:  # error-rate is not guarded in the example: guard it here
        guarded = gate.model_copy(update={"guard": MsprtGuard(method="msprt", alpha=0.01)})
        ticket = ticket.model_copy(update={"gates": tuple(guarded if g.name == case.gate else g for g in ticket.gates)})
    bank = detector_bank(ticket)
    log_a = bank.log_a(per_segment=ticket.gate(case.gate).by_segment)
    # The information bound scaled to the release-wide alarm level, plus the mixture's price
    # (log of its size), with 30% for noise: the detector's delay. The gate breaches once its
    # window is over too, then holds for the ticket's `sustained`; two minutes of judging grid.
    detector_s = (log_a + math.log(len(ODDS_RATIOS))) / case.nats / case.per_s * 1.3
    budget_ms = (case.sustained_s + max(detector_s, case.window_s * 1.3) + 2 * GRID) * 1000
    traffic = Traffic(
        regression=regression, seed=17, duration_ms=2 * HOUR + 40 * 60_000 + int(budget_ms), onset_ms=2 * HOUR,
        calls_per_second=5, candidate_share=0.3,
    )  # fmt: skip
    report = replay_events(ticket, [list(generate(traffic))])
    onset = traffic.start_ms + traffic.onset_ms
    fired = [e.at_ms - onset for e in report.timeline if e.decision.gate == case.gate and e.decision.kind != "promote"]
    assert fired, f"{case.gate} never fired"
    assert 0 <= fired[0] <= budget_ms, (fired[0], budget_ms, detector_s, case.window_s)
