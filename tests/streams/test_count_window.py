"""Count windows: exact rates over the last N observations, as a bit ring."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwatch.streams import CorruptState, CountWindow, StateKindMismatch, TaskCostWindow


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 40), flags=st.lists(st.booleans(), max_size=200))
def test_rate_is_exact_over_the_last_n(size: int, flags: list[bool]) -> None:
    window = CountWindow(size)
    for i, flag in enumerate(flags):
        window.update(flag)
        last = flags[max(0, i + 1 - size) : i + 1]
        assert (window.count, window.n) == (sum(last), len(last))
    assert window.flags() == flags[-size:]
    assert window.rate == (sum(flags[-size:]) / len(flags[-size:]) if flags else None)


@settings(max_examples=80, deadline=None)
@given(size=st.integers(1, 40), before=st.lists(st.booleans(), max_size=90), after=st.lists(st.booleans(), max_size=90))
def test_restored_twin_evolves_identically(size: int, before: list[bool], after: list[bool]) -> None:
    window = CountWindow(size)
    for flag in before:
        window.update(flag)
    twin = CountWindow.from_bytes(window.to_bytes())
    assert twin == window and twin.position == window.position
    for flag in after:
        window.update(flag)
        twin.update(flag)
        assert (twin.count, twin.n) == (window.count, window.n)
    assert twin.to_bytes() == window.to_bytes()


def test_boundaries() -> None:
    window = CountWindow(3)
    assert (window.n, window.count, window.rate, window.full) == (0, 0, None, False)
    for flag in (True, True, True):
        window.update(flag)
    assert (window.rate, window.full) == (1.0, True)
    window.update(False)  # evicts the first True
    assert (window.count, window.n) == (2, 3)


def test_1000_calls_take_125_bytes_of_bits() -> None:
    window = CountWindow(1000)
    for i in range(5000):
        window.update(i % 7 == 0)
    assert len(window._bits) == 125
    assert len(window.to_bytes()) < 125 + 20


@pytest.mark.parametrize("size", [0, -1, 10_000_001])
def test_rejects_bad_sizes(size: int) -> None:
    with pytest.raises(ValueError):
        CountWindow(size)


def test_corrupt_bytes_raise_clear_errors() -> None:
    window = CountWindow(10)
    window.update(True)
    data = window.to_bytes()
    with pytest.raises(CorruptState, match="checksum"):
        CountWindow.from_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    with pytest.raises(CorruptState, match="too short"):
        CountWindow.from_bytes(data[:3])
    with pytest.raises(StateKindMismatch, match="expected count window"):
        CountWindow.from_bytes(TaskCostWindow(3).to_bytes())
