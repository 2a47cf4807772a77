"""The mean change detector (cost per task, quality): at the null's boundary, checked after every
batch, it false-alarms no more often than the alpha it was given; after a change it alarms within a
budget of the information bound; its state round-trips with the bank.

The bound here is the bounded-mean problem's: ``log(A) / max_lambda E log(1 + lambda * Y)``,
maximised on a fine grid over the known after-change distribution (not the detector's grid)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import orjson

from rollwatch.gates.bank import DetectorBank
from rollwatch.gates.detector import MINUTE_MS, log_threshold
from rollwatch.gates.mean_detector import COST_CAP, MeanDetector, cost_increment, quality_cap

T0 = 1_763_900_000_000
BATCH_MS = 10_000

Draw = Callable[[random.Random], float]


def run(
    rng: random.Random, before: Draw, after: Draw, *, per_batch: int, onset_min: float, end_min: float,
    log_a: float, sums: bool,
) -> int | None:  # fmt: skip
    """Values after the onset until the alarm (-1 if it fired before the onset, None if never)."""
    det = MeanDetector()
    seen_after = 0
    t = 0
    while t < end_min * MINUTE_MS:
        draw = after if t >= onset_min * MINUTE_MS else before
        ys = [draw(rng) for _ in range(per_batch)]
        if sums:
            det.update_sums(sum(ys), sum(y * y for y in ys), T0 + t, log_a)
        else:
            det.update_values(ys, T0 + t, log_a)
        if t >= onset_min * MINUTE_MS:
            seen_after += per_batch
        if det.log_stat >= log_a:
            return seen_after if t >= onset_min * MINUTE_MS else -1
        t += BATCH_MS
    return None


def kl_inf(points: list[tuple[float, float]]) -> float:
    """max over bets in [0, 1) of E log(1 + bet * Y) for a discrete Y: the best growth against mean <= 0."""
    return max(sum(p * math.log1p(b / 1000 * y) for y, p in points) for b in range(0, 1000))


def fan_rate(points: list[tuple[float, float]]) -> float:
    """max over bets in [0, 1) of bet * E[Y] - psi(bet) * E[Y^2]: the best growth fed from sums (Fan's bound)."""
    mean = sum(p * y for y, p in points)
    square = sum(p * y * y for y, p in points)
    return max(b / 1000 * mean - (-math.log1p(-b / 1000) - b / 1000) * square for b in range(0, 1000))


def two_point(low: float, high: float, p_high: float) -> Draw:
    return lambda rng: high if rng.random() < p_high else low


def test_the_null_boundary_respects_alpha_both_ways_of_feeding() -> None:
    # A generous alpha over a short horizon, so a broken bound would show in 300 runs. The
    # boundary: Y is -1 or +1 with mean exactly 0 (the worst case for a bettor near bet 0).
    alpha, horizon_min = 0.2, 20
    log_a = log_threshold(alpha, 1, horizon_min * MINUTE_MS)
    boundary = two_point(-1.0, 1.0, 0.5)
    rng = random.Random(5)
    runs = 300
    for sums in (False, True):
        alarms = sum(
            run(rng, boundary, boundary, per_batch=5, onset_min=0, end_min=horizon_min, log_a=log_a, sums=sums)
            is not None
            for _ in range(runs)
        )
        # 95% binomial margin over alpha for 300 runs is about 0.04.
        assert alarms / runs <= alpha + 0.04, (sums, alarms)


def test_inside_the_null_it_stays_quiet() -> None:
    log_a = log_threshold(0.01, 6, 60 * MINUTE_MS)
    healthy = two_point(-0.5, 0.2, 0.3)  # mean -0.29: costs well under the allowance
    rng = random.Random(6)
    assert all(
        run(rng, healthy, healthy, per_batch=10, onset_min=0, end_min=360, log_a=log_a, sums=s) is None
        for s in (False, True)
        for _ in range(10)
    )


def test_a_change_after_two_hours_is_caught_within_the_bound_budget() -> None:
    log_a = log_threshold(0.01, 6, 60 * MINUTE_MS)
    healthy = two_point(-0.5, 0.2, 0.3)
    worse = [(-0.4, 0.3), (0.5, 0.7)]  # mean +0.23
    rng = random.Random(7)
    # Fed value by value, the information bound; fed from sums, the best that sums allow
    # (about half the growth here: a wide distribution for its mean).
    for sums, rate in ((False, kl_inf(worse)), (True, fan_rate(worse))):
        # Evidence needed: the alarm level, plus the mixture's price (log of its 4 bets) and an
        # onset's weight (a batch is a sixth of a minute), in nats.
        bound = (log_a + math.log(4) + math.log(MINUTE_MS / BATCH_MS)) / rate
        after = two_point(-0.4, 0.5, 0.7)
        delays = [
            run(rng, healthy, after, per_batch=10, onset_min=120, end_min=240, log_a=log_a, sums=sums)
            for _ in range(9)
        ]
        assert all(d is not None and d >= 0 for d in delays), delays
        median = sorted(d for d in delays if d is not None)[4]
        # Slack for the grid (a bet within 2x of the best) and noise.
        assert median <= bound * 1.25 + 10, (sums, median, bound)


def test_cost_increments_encode_the_ticket_and_are_capped() -> None:
    allowed = 1.25 * 0.012
    assert cost_increment(allowed, True, allowed) == 0.0  # exactly at the allowance: the boundary
    assert cost_increment(0.0, True, allowed) == -1.0  # the lowest an increment can be
    assert cost_increment(0.01, False, allowed) == 0.01 / allowed  # a failed task earns nothing back
    assert cost_increment(100 * allowed, True, allowed) == COST_CAP
    assert quality_cap(3.0) == 6.0 and quality_cap(0.7) == 1.4 and quality_cap(0.2) == 1.0


def test_one_runaway_task_cannot_roll_back_alone() -> None:
    log_a = log_threshold(0.01, 6, 60 * MINUTE_MS)
    det = MeanDetector()
    det.update_values([cost_increment(1000.0, False, 0.015)], T0, log_a)
    assert det.log_stat < log_a / 5


def test_state_round_trips_through_the_bank_as_json() -> None:
    bank = DetectorBank(0.01, 6, 60 * MINUTE_MS)
    bank.get("json-failures").update(3, 200, 0.01, T0, bank.log_a())
    bank.get_mean("cost-per-task").update_values([0.3, -0.2, 0.5], T0, bank.log_a())
    bank.get_mean("quality-floor").update_sums(1.5, 0.9, T0 + 60_000, bank.log_a())
    bank.get_mean("cost-per-task").seen_tasks = 42
    copy = DetectorBank.from_dict(orjson.loads(orjson.dumps(bank.to_dict())))
    assert copy.to_dict() == bank.to_dict()
    assert isinstance(copy.detectors["cost-per-task"], MeanDetector)
    assert copy.get_mean("cost-per-task").seen_tasks == 42
    # A key whose gate changed kind starts afresh rather than misreading the other's state.
    assert copy.get("cost-per-task").log_stat == -math.inf
