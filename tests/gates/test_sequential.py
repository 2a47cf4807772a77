"""The always-valid guards: they detect real effects, and noise checked after every
observation crosses them no more often than alpha."""

from __future__ import annotations

import random

import pytest

from rollwatch.gates.sequential import difference_above, rate_above


def test_rate_above_needs_more_than_the_literal_threshold() -> None:
    # 3 failures in 200 calls is 1.5%: above a literal 1% threshold, but not evidence.
    assert not rate_above(3, 200, 0.01).significant
    assert rate_above(12, 200, 0.01).significant
    assert rate_above(0, 200, 0.01).log_lr < 0


def test_rate_above_p_value_shrinks_with_evidence() -> None:
    p_values = [rate_above(k, 200, 0.01).p_value for k in (2, 5, 8, 11, 14)]
    assert p_values == sorted(p_values, reverse=True)
    assert p_values[0] == 1.0 and p_values[-1] < 0.001


@pytest.mark.parametrize("p", [0.01, 0.005])
def test_rate_above_is_valid_under_continuous_monitoring(p: float) -> None:
    rng = random.Random(7)
    runs, checks, alpha = 300, 150, 0.05
    crossed = 0
    for _ in range(runs):
        hits = 0
        for step in range(1, checks + 1):
            hits += sum(rng.random() < p for _ in range(10))
            if rate_above(hits, step * 10, 0.01, alpha).significant:
                crossed += 1
                break
    assert crossed / runs <= alpha + 0.02


def test_difference_detects_a_five_point_gap_and_respects_direction() -> None:
    assert difference_above(60, 200, 10, 200, margin=0.05).significant
    assert not difference_above(10, 200, 60, 200, margin=0.05).significant
    assert not difference_above(22, 200, 20, 200, margin=0.05).significant


def test_difference_with_factor_asks_for_a_ratio() -> None:
    assert difference_above(40, 500, 5, 500, factor=2.0).significant
    assert not difference_above(12, 500, 10, 500, factor=2.0).significant


def test_difference_is_valid_on_identical_arms_checked_after_every_batch() -> None:
    rng = random.Random(11)
    runs, checks, alpha = 200, 100, 0.05
    crossed = 0
    for _ in range(runs):
        a = b = n = 0
        for _ in range(checks):
            a += sum(rng.random() < 0.1 for _ in range(20))
            b += sum(rng.random() < 0.1 for _ in range(20))
            n += 20
            if difference_above(a, n, b, n, margin=0.0, alpha=alpha).significant:
                crossed += 1
                break
    assert crossed / runs <= alpha + 0.03


def test_no_data_is_never_significant() -> None:
    assert not rate_above(0, 0, 0.01).significant
    assert not difference_above(0, 0, 0, 10).significant
