"""Sizes of every window a route keeps, in one frozen value a release ticket can override.

Defaults match the seed gates: exact rates over the last 200/500/1000 calls and 200
reviews, cost per successful task over the last 1000 completed tasks, 1-minute buckets
covering 64 minutes (so any 15/30/60-minute query at the head is minute-exact), and
6-hour buckets covering 7 days and 6 hours (so "the 7 days before the current
30-minute window" is always held).

Why 6-hour baseline buckets and not 1-hour: a bucket carries a quantile sketch, and
at 1% relative accuracy a sketch of a few thousand skewed latencies takes ~400 bins.
169 hourly sketches alone would take 60-110 KB serialized; 29 six-hour sketches take
~15 KB, inside the 32 KB per-route budget. The price is granularity at the *old* end
of a 7-day baseline only (it starts on a 6-hour boundary); the recent end stays
minute-exact because the last 64 minutes are always read from minute buckets.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

import orjson

from rollwatch.streams.errors import InvalidConfig

__all__ = [
    "DAY_MS",
    "DRIFT_FEEDS",
    "DRIFT_KINDS",
    "DRIFT_METRICS",
    "DriftFeed",
    "DriftKind",
    "DriftMetric",
    "DriftSpec",
    "HOUR_MS",
    "MINUTE_MS",
    "ParamValue",
    "StreamsConfig",
    "WindowSpec",
]

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS

DriftKind: TypeAlias = Literal["adwin", "page_hinkley", "kswin"]
DriftFeed: TypeAlias = Literal["bucket", "event"]
DriftMetric: TypeAlias = Literal["latency", "quality", "cost"]
ParamValue: TypeAlias = float | int | str | bool | None

DRIFT_KINDS: Final[tuple[DriftKind, ...]] = ("adwin", "page_hinkley", "kswin")
DRIFT_FEEDS: Final[tuple[DriftFeed, ...]] = ("bucket", "event")
DRIFT_METRICS: Final[tuple[DriftMetric, ...]] = ("latency", "quality", "cost")
_MAX_COUNT_WINDOW: Final = 1_000_000
_MAX_BUCKETS: Final = 100_000


def _detector_params(kind: DriftKind) -> frozenset[str]:
    from river import drift  # local: river is heavy to import and only needed to validate

    cls = {"adwin": drift.ADWIN, "page_hinkley": drift.PageHinkley, "kswin": drift.KSWIN}[kind]
    names = set(inspect.signature(cls.__init__).parameters) - {"self", "window"}
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """One tier of time buckets: ``buckets`` buckets of ``bucket_ms`` each."""

    bucket_ms: int
    buckets: int

    def __post_init__(self) -> None:
        if type(self.bucket_ms) is not int or self.bucket_ms <= 0:
            raise InvalidConfig(f"bucket_ms must be a positive int, got {self.bucket_ms!r}")
        if type(self.buckets) is not int or not 1 <= self.buckets <= _MAX_BUCKETS:
            raise InvalidConfig(f"buckets must be an int in [1, {_MAX_BUCKETS}], got {self.buckets!r}")

    @property
    def horizon_ms(self) -> int:
        """How far back this tier reaches from its newest bucket."""
        return self.bucket_ms * self.buckets


@dataclass(frozen=True, slots=True)
class DriftSpec:
    """Which river detector watches each metric, with what parameters, fed how.

    ``feed="bucket"`` (default) gives the detector one value per closed fine bucket (the
    bucket's mean latency, mean quality, mean cost per call): detection is delayed by
    up to one bucket plus the allowed lateness, and costs nothing per event.
    ``feed="event"`` gives it every event's value: earliest detection, ~1-2 µs per event
    with ADWIN and far more with KSWIN (a KS test per value).
    ``metrics=()`` turns drift detection off for the route.
    """

    kind: DriftKind = "adwin"
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    feed: DriftFeed = "bucket"
    metrics: tuple[DriftMetric, ...] = DRIFT_METRICS

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise InvalidConfig(f"drift kind must be one of {', '.join(DRIFT_KINDS)}, got {self.kind!r}")
        if self.feed not in DRIFT_FEEDS:
            raise InvalidConfig(f"drift feed must be one of {', '.join(DRIFT_FEEDS)}, got {self.feed!r}")
        metrics = tuple(self.metrics)
        unknown = [m for m in metrics if m not in DRIFT_METRICS]
        if unknown or len(set(metrics)) != len(metrics):
            raise InvalidConfig(f"drift metrics must be distinct names from {DRIFT_METRICS}, got {metrics}")
        object.__setattr__(self, "metrics", metrics)
        params = dict(self.params)
        allowed = _detector_params(self.kind)
        for name, value in params.items():
            if name not in allowed:
                raise InvalidConfig(f"{self.kind} has no parameter {name!r} (has {', '.join(sorted(allowed))})")
            if value is not None and not isinstance(value, float | int | str | bool):
                raise InvalidConfig(f"drift parameter {name} must be a number or string, got {value!r}")
        object.__setattr__(self, "params", params)


@dataclass(frozen=True, slots=True)
class StreamsConfig:
    """Every size and duration the per-route state uses; see the module docstring for defaults.

    Count windows are in events (arrival order); durations are in milliseconds of event time.
    """

    error_window: int = 1000
    """Calls in the error-rate window (status is error or timeout)."""
    safety_window: int = 500
    """Calls in the safety-block-rate window."""
    schema_window: int = 200
    """Calls with a non-null ``schema_valid`` in the schema-failure-rate window."""
    review_window: int = 200
    """Reviews in the rejection-rate window."""
    task_window: int = 1000
    """Completed tasks in the cost-per-successful-task window."""
    fine: WindowSpec = WindowSpec(MINUTE_MS, 64)
    """Recent buckets: minute-exact queries over the last ``fine.horizon_ms``."""
    coarse: WindowSpec = WindowSpec(6 * HOUR_MS, 29)
    """Older buckets, fed by fine buckets as they age out: the 7-day baseline."""
    allowed_lateness_ms: int = 5 * MINUTE_MS
    """Events older than (max event time of the workflow - this) are late: counted, not windowed."""
    sketch_accuracy: float = 0.01
    """Relative accuracy of the latency quantile sketches."""
    drift: DriftSpec = DriftSpec()
    evidence_per_kind: int = 20
    """Most recent offending items kept per kind (schema failure, error, complaint...)."""
    evidence_sample_chars: int = 80
    """Characters of a complaint's sample kept with its evidence item."""
    complaint_times: int = 64
    """Timestamps of the most recent confirmed complaints kept for exact counts."""
    drift_events_kept: int = 16
    """Most recent drift detections kept per route."""
    dedup_ids: int = 4096
    """Event ids a workflow remembers to drop redeliveries."""

    def __post_init__(self) -> None:
        for name in (
            "error_window",
            "safety_window",
            "schema_window",
            "review_window",
            "task_window",
            "evidence_per_kind",
            "complaint_times",
            "drift_events_kept",
            "dedup_ids",
        ):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= _MAX_COUNT_WINDOW:
                raise InvalidConfig(f"{name} must be an int in [1, {_MAX_COUNT_WINDOW}], got {value!r}")
        if type(self.evidence_sample_chars) is not int or not 0 <= self.evidence_sample_chars <= 4096:
            raise InvalidConfig(f"evidence_sample_chars must be in [0, 4096], got {self.evidence_sample_chars!r}")
        if type(self.allowed_lateness_ms) is not int or self.allowed_lateness_ms < 0:
            raise InvalidConfig(f"allowed_lateness_ms must be an int >= 0, got {self.allowed_lateness_ms!r}")
        if not isinstance(self.sketch_accuracy, float | int) or not 1e-4 <= self.sketch_accuracy <= 0.2:
            raise InvalidConfig(f"sketch_accuracy must be in [0.0001, 0.2], got {self.sketch_accuracy!r}")
        if self.coarse.bucket_ms % self.fine.bucket_ms:
            raise InvalidConfig(
                f"coarse bucket ({self.coarse.bucket_ms} ms) must be a multiple of the fine bucket "
                f"({self.fine.bucket_ms} ms): fine buckets fold into coarse ones"
            )
        if self.fine.horizon_ms < self.allowed_lateness_ms + 2 * self.fine.bucket_ms:
            raise InvalidConfig(
                f"the fine tier ({self.fine.horizon_ms} ms) must cover the allowed lateness "
                f"({self.allowed_lateness_ms} ms) plus two buckets, or accepted events could miss it"
            )

    def to_dict(self) -> dict[str, Any]:
        """A plain-JSON form, embedded in serialized state so it restores with its sizes."""
        return {
            "error_window": self.error_window,
            "safety_window": self.safety_window,
            "schema_window": self.schema_window,
            "review_window": self.review_window,
            "task_window": self.task_window,
            "fine": [self.fine.bucket_ms, self.fine.buckets],
            "coarse": [self.coarse.bucket_ms, self.coarse.buckets],
            "allowed_lateness_ms": self.allowed_lateness_ms,
            "sketch_accuracy": self.sketch_accuracy,
            "drift": {
                "kind": self.drift.kind,
                "params": dict(self.drift.params),
                "feed": self.drift.feed,
                "metrics": list(self.drift.metrics),
            },
            "evidence_per_kind": self.evidence_per_kind,
            "evidence_sample_chars": self.evidence_sample_chars,
            "complaint_times": self.complaint_times,
            "drift_events_kept": self.drift_events_kept,
            "dedup_ids": self.dedup_ids,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamsConfig:
        """Inverse of :meth:`to_dict`; unknown or ill-typed fields raise :class:`InvalidConfig`."""
        try:
            values = dict(data)
            fine = values.pop("fine", None)
            coarse = values.pop("coarse", None)
            drift = values.pop("drift", None)
            if fine is not None:
                values["fine"] = WindowSpec(*fine)
            if coarse is not None:
                values["coarse"] = WindowSpec(*coarse)
            if drift is not None:
                values["drift"] = DriftSpec(
                    kind=drift["kind"],
                    params=drift.get("params", {}),
                    feed=drift.get("feed", "bucket"),
                    metrics=tuple(drift.get("metrics", DRIFT_METRICS)),
                )
            return cls(**values)
        except InvalidConfig:
            raise
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise InvalidConfig(f"not a streams config: {exc}") from None

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> StreamsConfig:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidConfig(f"config is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise InvalidConfig("config JSON must be an object")
        return cls.from_dict(value)
