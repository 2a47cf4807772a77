"""RouteState: lateness, queries at explicit times, evidence, complaints, serialization."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwatch.streams import (
    DAY_MS,
    MINUTE_MS,
    Applied,
    Bucket,
    InvalidConfig,
    InvalidQuery,
    RouteState,
    StreamsConfig,
    StreamsError,
)

from .factories import T0, call, complaint, review

LATENESS = StreamsConfig().allowed_lateness_ms


def _route() -> RouteState:
    return RouteState("wf", "r1")


def test_event_at_the_watermark_is_applied_one_ms_older_is_late() -> None:
    route = _route()
    watermark = T0 + 10 * MINUTE_MS
    assert route.apply(call(watermark), watermark) is Applied.APPLIED
    assert route.apply(call(watermark - 1), watermark) is Applied.LATE
    assert route.late_events == 1
    assert route.calls == 1
    assert route.window(DAY_MS, watermark + MINUTE_MS).calls == 1
    assert route.errors.n == 1


def test_a_smaller_watermark_never_moves_it_back() -> None:
    route = _route()
    route.apply(call(T0 + 100_000), T0 + 90_000)
    assert route.apply(call(T0 + 80_000), T0) is Applied.LATE
    assert route.watermark_ms == T0 + 90_000


def test_out_of_order_events_land_in_their_own_minute() -> None:
    route = _route()
    route.apply(call(T0 + 3 * MINUTE_MS + 5, latency_ms=300.0), T0)
    route.apply(call(T0 + 1 * MINUTE_MS + 5, latency_ms=100.0), T0)
    route.apply(call(T0 + 2 * MINUTE_MS + 5, latency_ms=200.0), T0)
    for minute, latency in ((1, 100.0), (2, 200.0), (3, 300.0)):
        now = T0 + (minute + 1) * MINUTE_MS
        assert route.latency_quantile(0.5, MINUTE_MS, now) == pytest.approx(latency, rel=0.01)
        assert route.window(MINUTE_MS, now).calls == 1


def test_per_minute_p95_over_the_last_half_hour_is_cheap_to_walk() -> None:
    route = _route()
    rng = random.Random(1)
    for minute in range(60):
        for k in range(30):
            latency = rng.lognormvariate(5, 0.3) * (2 if minute >= 45 else 1)
            route.apply(call(T0 + minute * MINUTE_MS + k * 2_000, latency_ms=latency), T0)
    now = T0 + 60 * MINUTE_MS
    per_minute = [route.latency_quantile(0.95, MINUTE_MS, now - m * MINUTE_MS) for m in range(30)]
    high = [p for p in per_minute if p is not None and p > 350]
    assert len(high) == 15  # the slow stretch held for the last 15 minutes, no longer


def test_baseline_is_the_week_before_the_current_half_hour() -> None:
    route = _route()
    start = T0
    for hour in range(7 * 24 + 2):
        route.apply(call(start + hour * 3_600_000, latency_ms=100.0), start + hour * 3_600_000 - LATENESS)
    now = start + (7 * 24 + 1) * 3_600_000 + 40 * MINUTE_MS
    route.apply(call(now - 10 * MINUTE_MS, latency_ms=900.0), now - 10 * MINUTE_MS - LATENESS)
    assert route.baseline_latency_quantile(0.95, now) == pytest.approx(100.0, rel=0.01)
    assert route.latency_quantile(0.95, 30 * MINUTE_MS, now) == pytest.approx(900.0, rel=0.01)
    assert route.latency_quantiles((0.5, 0.99), 30 * MINUTE_MS, now) == [
        pytest.approx(900.0, rel=0.01),
        pytest.approx(900.0, rel=0.01),
    ]


def test_window_rates_and_money() -> None:
    route = _route()
    route.apply(call(T0, status="error", cost_usd=0.25, quality_score=0.5), T0)
    route.apply(call(T0 + 1, status="timeout", cost_usd=0.5, quality_score=1.0), T0)
    route.apply(call(T0 + 2, schema_valid=False, cost_usd=0.25), T0)
    route.apply(call(T0 + 3, schema_valid=None, safety_blocked=True, cost_usd=0.0), T0)
    route.apply(review(T0 + 4, "rejected"), T0)
    route.apply(review(T0 + 5, "approved"), T0)
    stats = route.window(15 * MINUTE_MS, T0 + MINUTE_MS)
    assert (stats.error_rate, stats.timeout_rate, stats.safety_block_rate) == (0.5, 0.25, 0.25)
    assert stats.schema_failure_rate == pytest.approx(1 / 3)
    assert (stats.cost_nano, stats.cost_per_request_usd, stats.mean_quality) == (1_000_000_000, 0.25, 0.75)
    assert (stats.rejection_rate, stats.success_rate) == (0.5, None)
    assert route.errors.rate == 0.5 and route.review_rejections.rate == 0.5
    assert route.schema_failures.n == 3


def test_no_data_rates_are_none() -> None:
    stats = _route().window(15 * MINUTE_MS, T0)
    assert (stats.calls, stats.error_rate, stats.mean_quality, stats.cost_per_request_usd) == (0, None, None, None)
    assert _route().latency_quantile(0.95, 30 * MINUTE_MS, T0) is None


def test_evidence_and_complaints_since_a_release() -> None:
    route = _route()
    route.apply(call(T0, status="timeout", trace_id="t1", event_id="c1"), T0)
    route.apply(call(T0 + 1, safety_blocked=True, schema_valid=False, event_id="c2"), T0)
    route.apply(review(T0 + 2, "rejected", event_id="r1"), T0)
    route.apply(complaint(T0 + 3, sample="wrong refund amount", event_id="k1"), T0)
    route.apply(complaint(T0 + 5, confirmed=False, event_id="k2"), T0)
    route.apply(complaint(T0 + 9, event_id="k3"), T0)
    assert [(e.kind, e.event_id) for e in route.evidence_items()] == [
        ("timeout", "c1"),
        ("schema_failure", "c2"),
        ("safety_block", "c2"),
        ("rejected_review", "r1"),
        ("complaint", "k1"),
        ("complaint", "k3"),
    ]
    assert route.evidence_items("timeout")[0].trace_id == "t1"
    view = route.complaints_since(T0 + 3, T0 + 10)
    assert (view.count, view.exact) == (2, True)
    assert view.items[0].sample == "wrong refund amount"
    assert route.complaints_since(T0 + 4, T0 + 10).count == 1
    assert route.complaints == 2


def test_idle_route_closes_buckets_at_a_timer_tick() -> None:
    route = _route()
    for k in range(10):
        route.apply(call(T0 + k * 1000, latency_ms=100.0), T0)
    route.close_until(T0 + 2 * MINUTE_MS)
    assert route.window(MINUTE_MS, T0 + MINUTE_MS).calls == 10
    assert route.apply(call(T0 + 5), T0) is Applied.LATE


def test_query_errors() -> None:
    route = _route()
    with pytest.raises(InvalidQuery):
        route.window(0, T0)
    with pytest.raises(InvalidQuery):
        route.latency_quantile(1.2, MINUTE_MS, T0)
    with pytest.raises(InvalidQuery):
        route.complaints_between(T0, T0 - 1)
    with pytest.raises(InvalidConfig):
        RouteState("wf", "r", config={"error_window": 3})  # type: ignore[arg-type]


def test_config_sizes_the_count_windows() -> None:
    route = RouteState("wf", "r", StreamsConfig(error_window=200, safety_window=50, schema_window=20))
    assert (route.errors.size, route.safety_blocks.size, route.schema_failures.size) == (200, 50, 20)
    assert route.tasks.size == 1000 and route.review_rejections.size == 200


def test_event_fed_twin_matches_after_restore() -> None:
    from rollwatch.streams import DriftSpec

    config = StreamsConfig(drift=DriftSpec(feed="event"))
    route = RouteState("wf", "r1", config)
    rng = random.Random(4)
    events = [
        call(T0 + i * 500, latency_ms=rng.gauss(100 if i < 900 else 170, 5), quality_score=rng.random())
        for i in range(1500)
    ]
    for e in events[:700]:
        route.apply(e, e.ts_ms - LATENESS)
    twin = RouteState.from_bytes(route.to_bytes())
    assert twin == route
    for e in events[700:]:
        assert twin.apply(e, e.ts_ms - LATENESS) == route.apply(e, e.ts_ms - LATENESS)
    assert twin.drift.events == route.drift.events and route.drift.events
    assert twin.to_bytes() == route.to_bytes()


_ROUTE_BYTES: list[bytes] = []


def _sample_route_bytes() -> bytes:
    if not _ROUTE_BYTES:
        route = RouteState("wf", "r1")
        rng = random.Random(9)
        for i in range(3000):
            route.apply(
                call(
                    T0 + i * 2_000,
                    latency_ms=rng.lognormvariate(5, 1),
                    status="error" if i % 13 == 0 else "ok",
                    task_success=None if i % 3 else i % 2 == 0,
                    quality_score=rng.random(),
                ),
                T0 + i * 2_000 - LATENESS,
            )
        _ROUTE_BYTES.append(route.to_bytes())
    return _ROUTE_BYTES[0]


@settings(max_examples=150, deadline=None)
@given(position=st.integers(0, 10**6), bit=st.integers(0, 7), cut=st.booleans())
def test_corrupt_route_bytes_always_raise_streams_errors(position: int, bit: int, cut: bool) -> None:
    data = bytearray(_sample_route_bytes())
    position %= len(data)
    if cut:
        del data[position:]
    else:
        data[position] ^= 1 << bit
    with pytest.raises(StreamsError):
        RouteState.from_bytes(bytes(data))


def test_route_round_trip_is_exact() -> None:
    data = _sample_route_bytes()
    route = RouteState.from_bytes(data)
    assert route.to_bytes() == data


_call_fields = st.tuples(
    st.one_of(st.just(0.0), st.floats(0.001, 10_000.0, allow_nan=False)),
    st.sampled_from(["ok", "ok", "error", "timeout"]),
    st.sampled_from([None, True, False]),
    st.booleans(),
    st.sampled_from([None, True, False]),
    st.integers(0, 5_000_000),
    st.one_of(st.none(), st.floats(0.0, 5.0, allow_nan=False)),
)


@settings(max_examples=60, deadline=None)
@given(calls=st.lists(_call_fields, min_size=1, max_size=60))
def test_apply_fills_a_bucket_exactly_as_bucket_add_call(
    calls: list[tuple[float, str, bool | None, bool, bool | None, int, float | None]],
) -> None:
    """RouteState.apply writes Bucket.add_call out inline for speed: the two must not drift apart."""
    route = _route()
    expected = Bucket(T0 // MINUTE_MS, route.windows.mapping)
    for i, (latency, status, valid, blocked, success, cost, quality) in enumerate(calls):
        event = call(
            T0 + i,
            latency_ms=latency,
            status=status,  # type: ignore[arg-type]
            schema_valid=valid,
            safety_blocked=blocked,
            task_success=success,
            cost_usd=cost / 1e9,
            quality_score=quality,
        )
        assert route.apply(event, T0) is Applied.APPLIED
        expected.add_call(latency, status, valid, blocked, success, cost, quality)
    (bucket,), _ = route.windows.buckets(T0, T0 + MINUTE_MS)
    assert bucket == expected
    assert (bucket.errors, bucket.timeouts, bucket.schema_failed, bucket.safety_blocked) == (
        sum(s != "ok" for _, s, *_ in calls),
        sum(s == "timeout" for _, s, *_ in calls),
        sum(c[2] is False for c in calls),
        sum(c[3] for c in calls),
    )
