"""Cost per successful task over the last N completed tasks, in exact nano-dollars."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwatch.streams import CorruptState, TaskCostWindow, usd_to_nano

_calls = st.lists(st.tuples(st.integers(0, 10**9), st.sampled_from([None, None, True, False])), max_size=150)


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 12), calls=_calls)
def test_matches_brute_force(size: int, calls: list[tuple[int, bool | None]]) -> None:
    window = TaskCostWindow(size)
    tasks: list[tuple[int, bool]] = []
    pending = 0
    for cost, outcome in calls:
        window.update(cost, outcome)
        pending += cost
        if outcome is not None:
            tasks.append((pending, outcome))
            pending = 0
    held = tasks[-size:]
    assert window.tasks() == held
    assert window.pending_nano == pending
    assert (window.completions, window.successes) == (len(held), sum(ok for _, ok in held))
    assert window.cost_nano == sum(c for c, _ in held)
    successes = sum(ok for _, ok in held)
    if not held:
        assert window.cost_per_success_usd is None
    elif not successes:
        assert window.cost_per_success_usd == math.inf
    else:
        assert window.cost_per_success_usd == sum(c for c, _ in held) / successes / 1e9


@settings(max_examples=80, deadline=None)
@given(size=st.integers(1, 12), before=_calls, after=_calls)
def test_restored_twin_evolves_identically(
    size: int, before: list[tuple[int, bool | None]], after: list[tuple[int, bool | None]]
) -> None:
    window = TaskCostWindow(size)
    for cost, outcome in before:
        window.update(cost, outcome)
    twin = TaskCostWindow.from_bytes(window.to_bytes())
    assert twin == window
    for cost, outcome in after:
        window.update(cost, outcome)
        twin.update(cost, outcome)
    assert twin.to_bytes() == window.to_bytes()
    assert twin.cost_per_success_usd == window.cost_per_success_usd


def test_steps_are_charged_to_the_completion_that_ends_them() -> None:
    window = TaskCostWindow(1000)
    window.update(usd_to_nano(0.002), None)  # planning step
    window.update(usd_to_nano(0.003), None)  # tool step
    window.update(usd_to_nano(0.005), True)  # answer: task done
    window.update(usd_to_nano(0.004), False)  # a one-call task that failed
    assert window.tasks() == [(10_000_000, True), (4_000_000, False)]
    assert window.cost_per_success_usd == pytest.approx(0.014)


def test_money_is_exact_in_nano_dollars() -> None:
    window = TaskCostWindow(3)
    for _ in range(10):
        window.update(usd_to_nano(0.1), True)
    assert window.cost_nano == 300_000_000  # 0.1 + 0.1 + 0.1 in floats is 0.30000000000000004


def test_gcd_makes_round_prices_cheap() -> None:
    round_prices, odd_prices = TaskCostWindow(1000), TaskCostWindow(1000)
    for i in range(1000):
        round_prices.update(usd_to_nano(0.001 * (i % 50 + 1)), True)
        odd_prices.update(usd_to_nano(0.001 * (i % 50 + 1)) + 1, True)
    assert len(round_prices.to_bytes()) < len(odd_prices.to_bytes()) * 0.6


def test_corrupt_bytes() -> None:
    window = TaskCostWindow(5)
    window.update(7, True)
    data = window.to_bytes()
    with pytest.raises(CorruptState):
        TaskCostWindow.from_bytes(data[:8] + data[9:])
