"""StreamsConfig: defaults that match the seeds, validation, JSON round trip."""

from __future__ import annotations

import pytest

from rollwatch.errors import ConfigError
from rollwatch.streams import DAY_MS, HOUR_MS, MINUTE_MS, DriftSpec, InvalidConfig, StreamsConfig, WindowSpec


def test_defaults_match_the_seed_gates() -> None:
    config = StreamsConfig()
    assert (config.schema_window, config.safety_window, config.error_window) == (200, 500, 1000)
    assert (config.review_window, config.task_window) == (200, 1000)
    assert config.fine.bucket_ms == MINUTE_MS and config.fine.horizon_ms >= 60 * MINUTE_MS
    assert config.coarse.bucket_ms >= HOUR_MS
    assert config.coarse.horizon_ms >= 7 * DAY_MS + 30 * MINUTE_MS
    assert config.allowed_lateness_ms == 5 * MINUTE_MS
    assert config.drift.kind == "adwin" and config.drift.metrics == ("latency", "quality", "cost")
    assert config.dedup_ids == 4096


def test_json_round_trip() -> None:
    config = StreamsConfig(
        error_window=300,
        coarse=WindowSpec(3 * HOUR_MS, 58),
        drift=DriftSpec(kind="page_hinkley", params={"threshold": 30.0, "mode": "up"}, metrics=("latency",)),
    )
    assert StreamsConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_window": 0},
        {"schema_window": 2.5},
        {"allowed_lateness_ms": -1},
        {"sketch_accuracy": 0.5},
        {"coarse": WindowSpec(90_000, 10)},
        {"fine": WindowSpec(MINUTE_MS, 5)},
        {"evidence_sample_chars": 10_000},
    ],
)
def test_invalid_values_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidConfig) as info:
        StreamsConfig(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ConfigError)


def test_bad_json_and_specs() -> None:
    with pytest.raises(InvalidConfig):
        StreamsConfig.from_json(b"[1]")
    with pytest.raises(InvalidConfig):
        StreamsConfig.from_json(b'{"nope": 1}')
    with pytest.raises(InvalidConfig):
        StreamsConfig.from_json(b"{")
    with pytest.raises(InvalidConfig):
        WindowSpec(0, 3)
    with pytest.raises(InvalidConfig):
        DriftSpec(metrics=("latency", "latency"))
    with pytest.raises(InvalidConfig):
        DriftSpec(feed="sometimes")  # type: ignore[arg-type]
