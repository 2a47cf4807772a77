"""Drift detectors: detection, when and on which metric, and exact restore of their state."""

from __future__ import annotations

import random

import pytest

from rollwatch.streams import (
    MINUTE_MS,
    CorruptState,
    DriftMonitor,
    DriftSpec,
    InvalidConfig,
    MetricDetector,
    RouteState,
    StreamsConfig,
)
from rollwatch.streams.codec import Reader, Writer
from rollwatch.streams.drift import effective_params

from .factories import T0, call

SPECS = [
    DriftSpec(),
    DriftSpec(feed="event"),
    DriftSpec(kind="page_hinkley", params={"threshold": 200.0, "min_instances": 30}),
    DriftSpec(kind="kswin", params={"seed": 7, "alpha": 0.001}),
]


def _step_series(seed: int, n: int = 600, change: int = 300) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(100.0, 5.0) if i < change else rng.gauss(160.0, 5.0) for i in range(n)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind}-{s.feed}")
def test_detects_a_step_change_and_says_when_and_where(spec: DriftSpec) -> None:
    monitor = DriftMonitor(spec)
    for i, value in enumerate(_step_series(1)):
        monitor.update("latency", value, T0 + i)
    late = [e for e in monitor.events if e.at_ms >= T0 + 300]
    assert late, monitor.events
    first = late[0]
    assert first.metric == "latency" and first.detector == spec.kind
    assert T0 + 300 <= first.at_ms < T0 + 400
    assert monitor.drift_detected_at_ms("latency") == monitor.events[-1].at_ms
    assert monitor.drift_detected_at_ms("quality") is None and monitor.last("cost") is None


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind}-{s.feed}")
@pytest.mark.parametrize("cut", [0, 5, 150, 320])
def test_restored_detectors_behave_exactly_like_the_originals(spec: DriftSpec, cut: int) -> None:
    series = _step_series(2)
    monitor = DriftMonitor(spec)
    for i, value in enumerate(series[:cut]):
        monitor.update("latency", value, i)
        monitor.update("cost", value / 1000, i)
    twin = DriftMonitor.from_bytes(monitor.to_bytes())
    assert twin == monitor
    for i, value in enumerate(series[cut:], start=cut):
        assert twin.update("latency", value, i) == monitor.update("latency", value, i)
        assert twin.update("cost", value / 1000, i) == monitor.update("cost", value / 1000, i)
    assert twin.events == monitor.events and twin.detections == monitor.detections
    assert twin.to_bytes() == monitor.to_bytes()


def test_bucket_feed_reports_the_minute_the_change_started() -> None:
    config = StreamsConfig()
    route = RouteState("wf", "r1", config)
    rng = random.Random(3)
    max_ts = 0
    for minute in range(240):
        for k in range(20):
            ts = T0 + minute * MINUTE_MS + k * 3_000
            latency = rng.gauss(100.0, 5.0) if minute < 180 else rng.gauss(150.0, 5.0)
            max_ts = max(max_ts, ts)
            route.apply(call(ts, latency_ms=latency, quality_score=0.8), max_ts - config.allowed_lateness_ms)
    event = route.drift.last("latency")
    assert event is not None
    assert T0 + 180 * MINUTE_MS <= event.at_ms <= T0 + 200 * MINUTE_MS
    assert event.at_ms % MINUTE_MS == 0
    assert route.drift.last("quality") is None


def test_bucket_feed_checks_every_value_unless_told() -> None:
    assert effective_params(DriftSpec())["clock"] == 1
    assert effective_params(DriftSpec(params={"clock": 8}))["clock"] == 8
    assert "clock" not in effective_params(DriftSpec(feed="event"))


def test_bad_specs_are_config_errors() -> None:
    with pytest.raises(InvalidConfig, match="no parameter"):
        DriftSpec(params={"nonsense": 1})
    with pytest.raises(InvalidConfig, match="drift kind"):
        DriftSpec(kind="cusum")  # type: ignore[arg-type]
    with pytest.raises(InvalidConfig, match="cannot build"):
        DriftMonitor(DriftSpec(kind="kswin", params={"alpha": 2.0}))


def test_rejected_adwin_state_is_a_corrupt_state_error() -> None:
    """Bytes that passed the CRC yet fail in river's Rust decoder still give our error."""
    w = Writer()
    w.flag(False)
    w.blob(b"\x01\x02\x03")
    with pytest.raises(CorruptState, match="ADWIN state rejected"):
        MetricDetector.read(Reader(bytes(w.buf)), "adwin", {})
