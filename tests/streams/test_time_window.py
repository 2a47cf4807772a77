"""Two-tier time windows: the bucket rule, closing, spilling, caching and serialization."""

from __future__ import annotations

import random

import pytest

from rollwatch.streams import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    Bucket,
    CorruptState,
    InvalidQuery,
    QuantileSketch,
    StreamsConfig,
    TimeWindows,
    WindowSpec,
)

from .factories import T0


def _windows(fine: WindowSpec | None = None, coarse: WindowSpec | None = None) -> TimeWindows:
    config = StreamsConfig()
    return TimeWindows(fine or config.fine, coarse or config.coarse, config.sketch_accuracy)


def _add(windows: TimeWindows, ts: int, latency: float = 100.0) -> None:
    bucket = windows.bucket_for(ts)
    assert bucket is not None
    bucket.add_call(latency, "ok", None, False, None, 1, None)


def test_aligned_query_covers_exactly_the_minutes_of_the_span() -> None:
    windows = _windows()
    for minute in range(40):
        _add(windows, T0 + minute * MINUTE_MS + 30_000)
    now = T0 + 40 * MINUTE_MS
    stats = windows.stats(now - 30 * MINUTE_MS, now)
    assert (stats.calls, stats.buckets) == (30, 30)


def test_unaligned_query_takes_buckets_starting_in_range() -> None:
    """now inside minute 39: minute 39 is in (it starts before now), minute 9 is out."""
    windows = _windows()
    for minute in range(40):
        _add(windows, T0 + minute * MINUTE_MS + 1)
    now = T0 + 39 * MINUTE_MS + 20_000
    fine, coarse = windows.buckets(now - 30 * MINUTE_MS, now)
    assert [b.index - T0 // MINUTE_MS for b in fine] == list(range(10, 40))
    assert coarse == []


def test_queries_slide_with_now_and_need_no_event() -> None:
    windows = _windows()
    _add(windows, T0)
    assert windows.stats(T0 + 15 * MINUTE_MS - 1, T0 + 30 * MINUTE_MS).calls == 0
    assert windows.stats(T0, T0 + 30 * MINUTE_MS).calls == 1
    assert windows.stats(T0 + 1, T0 + 90 * MINUTE_MS).calls == 0


def test_old_minutes_spill_to_coarse_buckets_and_count_at_their_granularity() -> None:
    windows = _windows()
    _add(windows, T0 + 5 * MINUTE_MS)  # in the 6-hour bucket starting at T0
    _add(windows, T0 + 7 * HOUR_MS)  # pushes minute 5 out of the 64-minute ring
    assert windows.oldest_fine_ms() == T0 + 7 * HOUR_MS - 63 * MINUTE_MS
    assert windows.stats(T0, T0 + 1).calls == 1  # the coarse bucket starts at T0: in
    assert windows.stats(T0 + 1, T0 + 6 * HOUR_MS).calls == 0  # starts before the range: out
    assert windows.stats(T0 - 1, T0 + 8 * HOUR_MS).calls == 2


def test_baseline_before_the_current_window_is_minute_exact_at_its_recent_end() -> None:
    windows = _windows()
    start = T0 + 7 * DAY_MS
    for minute in range(120):
        _add(windows, start + minute * MINUTE_MS, latency=100.0 if minute < 90 else 1000.0)
    now = start + 120 * MINUTE_MS
    baseline = windows.latency_sketch(now - 30 * MINUTE_MS - 7 * DAY_MS, now - 30 * MINUTE_MS)
    recent = windows.latency_sketch(now - 30 * MINUTE_MS, now)
    assert (baseline.count, recent.count) == (90, 30)
    assert baseline.quantile(1.0) == pytest.approx(100.0, rel=0.01)
    assert recent.quantile(0.0) == pytest.approx(1000.0, rel=0.01)


def test_coarse_ring_keeps_seven_days_and_a_bit() -> None:
    windows = _windows()
    for hour in range(0, 24 * 9, 3):
        _add(windows, T0 + hour * HOUR_MS)
    now = T0 + 24 * 9 * HOUR_MS
    kept = windows.stats(0, now).calls
    assert 7 * 8 <= kept <= (7 * 24 + 6 + 2) // 3 + 1
    assert windows.expired > 0


def test_buckets_close_in_time_order_once_the_watermark_passes_them() -> None:
    windows = _windows(WindowSpec(1_000, 8), WindowSpec(4_000, 3))
    closed: list[int] = []
    windows.on_close = lambda b: closed.append(b.index)
    for ts in (T0 + 3_500, T0 + 1_200, T0 + 2_100, T0 + 5_000):
        _add(windows, ts)
    windows.close_until(T0 + 2_999)
    assert closed == [T0 // 1000 + 1]
    windows.close_until(T0 + 3_000)
    assert closed == [T0 // 1000 + 1, T0 // 1000 + 2]
    assert windows.buckets(T0, T0 + 3_000)[0][0].latency.frozen
    windows.close_until(T0 + 3_000)  # idempotent
    assert len(closed) == 2
    _add(windows, T0 + 20_000)  # everything older spills: closed first, in order
    assert closed == [T0 // 1000 + i for i in (1, 2, 3, 5)]


def test_baseline_cache_follows_changes() -> None:
    """The cached merge of frozen coarse buckets always equals merging them afresh."""
    rng = random.Random(5)
    windows = _windows(WindowSpec(1_000, 4), WindowSpec(2_000, 5))
    for step in range(400):
        ts = T0 + step * 137
        _add(windows, ts, rng.lognormvariate(3, 1))
        if step % 7 == 0:
            for start in (T0, min(T0 + 3_000, ts), ts - 9_000):
                fine, coarse = windows.buckets(start, ts + 1)
                manual = QuantileSketch()
                for bucket in (*fine, *coarse):
                    manual.merge(bucket.latency)
                assert windows.latency_sketch(start, ts + 1) == manual
                assert windows.latency_sketch(start, ts + 1) == manual  # second time from the cache


@pytest.mark.parametrize("seed", range(6))
def test_sliding_merges_equal_a_fresh_merge_under_late_events_and_lagging_watermarks(seed: int) -> None:
    """Running merges slide (add new buckets, subtract old ones); reopened buckets must not leak in."""
    rng = random.Random(seed)
    windows = _windows(WindowSpec(1_000, 6), WindowSpec(3_000, 4))
    now = T0
    for _ in range(600):
        now += rng.choice((0, 50, 400, 1_000, 2_500))
        # Mostly in order; sometimes late into a bucket the watermark already closed.
        ts = now - rng.choice((0, 0, 0, 1_500, 4_000))
        if windows.bucket_for(ts) is not None:
            _add(windows, ts, rng.lognormvariate(3, 1))
        if rng.random() < 0.5:
            windows.close_until(now - rng.choice((0, 0, 2_000)))
        for span in (3_000, 5_000, 14_000):
            start, end = now - span, now + 1
            fine, coarse = windows.buckets(start, end)
            manual = QuantileSketch()
            for bucket in (*fine, *coarse):
                manual.merge(bucket.latency)
            assert windows.latency_sketch(start, end) == manual


def test_bucket_for_refuses_what_is_older_than_the_ring() -> None:
    windows = _windows(WindowSpec(1_000, 8), WindowSpec(4_000, 3))
    _add(windows, T0 + 10_000)
    assert windows.bucket_for(T0 + 3_000) is not None
    assert windows.bucket_for(T0 + 2_999) is None


def test_query_errors() -> None:
    with pytest.raises(InvalidQuery):
        _windows().stats(10, 5)


def test_round_trip_and_corruption() -> None:
    windows = _windows(WindowSpec(1_000, 8), WindowSpec(4_000, 3))
    for i in range(100):
        _add(windows, T0 + i * 397, float(i))
    windows.close_until(T0 + 30_000)
    data = windows.to_bytes()
    twin = TimeWindows.from_bytes(data)
    assert twin == windows
    for i in range(100, 150):
        _add(windows, T0 + i * 397, float(i))
        _add(twin, T0 + i * 397, float(i))
    assert twin == windows and twin.to_bytes() == windows.to_bytes()
    with pytest.raises(CorruptState):
        TimeWindows.from_bytes(data[:-10] + data[-4:])


def test_bucket_equality_and_merge() -> None:
    from rollwatch.streams.sketch import mapping_for

    a, b = Bucket(1, mapping_for(0.01)), Bucket(1, mapping_for(0.01))
    a.add_call(10.0, "timeout", False, True, True, 5, 0.5)
    a.add_review(True)
    a.add_complaint()
    b.merge(a)
    assert a == b
    assert (b.errors, b.timeouts, b.schema_failed, b.succeeded, b.rejected, b.complaints) == (1, 1, 1, 1, 1, 1)


def test_a_long_silence_expires_the_whole_coarse_ring() -> None:
    windows = _windows(WindowSpec(1_000, 4), WindowSpec(2_000, 3))
    for i in range(20):
        _add(windows, T0 + i * 1_000)
    _add(windows, T0 + 10**6)
    _add(windows, T0 + 10**7)
    fine, coarse = windows._live()
    assert [b.index for b in fine] == [(T0 + 10**7) // 1_000]
    assert len(coarse) == 1
    assert TimeWindows.from_bytes(windows.to_bytes()) == windows
