"""Quantile sketch: accuracy against numpy, merging, freezing, serialization."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from ddsketch.mapping import LogarithmicMapping
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwatch.streams import CorruptState, InvalidQuery, QuantileSketch
from rollwatch.streams.sketch import mapping_for

QS = (0.5, 0.95, 0.99)


def _relative_errors(values: np.ndarray, accuracy: float = 0.01) -> list[float]:
    sketch = QuantileSketch(accuracy)
    for value in values.tolist():
        sketch.add(value)
    exact = np.percentile(values, [q * 100 for q in QS])
    got = sketch.quantiles(QS)
    return [abs(g - e) / e for g, e in zip(got, exact, strict=True) if g is not None]


def test_lognormal_1e5_p50_p95_p99_within_1_percent() -> None:
    values = np.random.default_rng(7).lognormal(mean=5.0, sigma=1.0, size=100_000)
    errors = _relative_errors(values)
    assert len(errors) == 3
    assert max(errors) <= 0.01, errors


def test_bimodal_1e5_p50_p95_p99_within_1_percent() -> None:
    """Fast cached answers plus a slow tail; no quantile asked falls in the gap between modes."""
    rng = np.random.default_rng(11)
    values = np.concatenate([rng.lognormal(4.0, 0.3, 70_000), rng.lognormal(7.0, 0.5, 30_000)])
    rng.shuffle(values)
    errors = _relative_errors(values)
    assert max(errors) <= 0.01, errors


def test_interpolates_like_numpy_even_across_a_gap() -> None:
    """numpy interpolates between neighbouring ranks; so does the sketch, so a median between
    two modes is still within the accuracy of numpy's answer."""
    values = np.array([10.0] * 50 + [1000.0] * 50)
    errors = _relative_errors(values)
    assert max(errors) <= 0.01, errors


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1e7)), min_size=1, max_size=300),
    q=st.floats(0.0, 1.0),
)
def test_any_quantile_is_within_accuracy_of_numpy(values: list[float], q: float) -> None:
    sketch = QuantileSketch(0.01)
    sketch.update_many(values)
    got = sketch.quantile(q)
    exact = float(np.percentile(values, q * 100))
    assert got is not None
    assert math.isclose(got, exact, rel_tol=0.01 + 1e-9, abs_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(1e-3, 1e7), max_size=100))
def test_keys_are_ddsketch_logarithmic_mapping_keys(values: list[float]) -> None:
    ours = mapping_for(0.01)
    theirs = LogarithmicMapping(0.01)
    assert [ours.key(v) for v in values] == [theirs.key(v) for v in values]


@settings(max_examples=80, deadline=None)
@given(a=st.lists(st.floats(0.0, 1e5), max_size=100), b=st.lists(st.floats(0.0, 1e5), max_size=100))
def test_merge_equals_adding_everything(a: list[float], b: list[float]) -> None:
    left, right, both = QuantileSketch(), QuantileSketch(), QuantileSketch()
    left.update_many(a)
    right.update_many(b)
    both.update_many(a + b)
    right.freeze()
    left.merge(right)
    assert left == both
    assert left.count == len(a) + len(b)


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.floats(0.0, 1e6), max_size=200), more=st.lists(st.floats(0.0, 1e6), max_size=50))
def test_freeze_and_bytes_change_nothing_observable(values: list[float], more: list[float]) -> None:
    live = QuantileSketch()
    live.update_many(values)
    frozen = QuantileSketch.from_bytes(live.to_bytes())
    assert frozen.frozen and frozen == live
    assert frozen.quantiles(QS) == live.quantiles(QS)
    frozen.update_many(more)  # thaws
    live.update_many(more)
    assert frozen == live
    assert frozen.frozen == (not more)


def test_empty_and_bad_quantiles() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.5) is None
    sketch.add(0.0)
    assert sketch.quantile(0.5) == 0.0
    with pytest.raises(InvalidQuery):
        sketch.quantile(1.5)
    with pytest.raises(InvalidQuery):
        sketch.merge(QuantileSketch(0.02))


def test_encoding_is_compact() -> None:
    values = np.random.default_rng(3).lognormal(5.0, 1.0, 100_000)
    sketch = QuantileSketch()
    sketch.update_many(values.tolist())
    bins = len(sketch.items())
    assert len(sketch.to_bytes()) < 1.5 * bins + 32


def test_corrupt_sketch_bytes() -> None:
    sketch = QuantileSketch()
    sketch.update_many([1.0, 2.0, 3.0])
    data = bytearray(sketch.to_bytes())
    data[-6] ^= 0x40
    with pytest.raises(CorruptState):
        QuantileSketch.from_bytes(bytes(data))


def test_subtract_undoes_merge_exactly_and_refuses_what_was_not_merged() -> None:
    rng = random.Random(3)
    a, b = QuantileSketch(), QuantileSketch()
    for _ in range(500):
        a.add(rng.lognormvariate(3, 1))
        b.add(rng.choice((0.0, rng.lognormvariate(5, 2))))
    b.freeze()
    total = a.copy()
    total.merge(b)
    total.subtract(b)
    assert total == a
    assert sorted(total.items()) == sorted(a.items())
    with pytest.raises(InvalidQuery):
        a.subtract(b)
