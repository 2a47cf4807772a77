"""One time bucket's counts, sums and latency sketch, and the sums a window query returns.

A bucket is a plain record updated in place on the hot path (slots, ints, one
sketch); it writes only its non-zero fields, so the many quiet buckets of a quiet
route cost a few bytes each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from rollwatch.streams.codec import Reader, Writer
from rollwatch.streams.sketch import QuantileSketch, SketchMapping

__all__ = ["INT_FIELDS", "Bucket", "WindowStats"]

INT_FIELDS: Final = (
    "calls",
    "errors",
    "timeouts",
    "schema_checked",
    "schema_failed",
    "safety_blocked",
    "completed",
    "succeeded",
    "cost_nano",
    "quality_n",
    "reviews",
    "rejected",
    "complaints",
)
_FLOAT_FIELDS: Final = ("latency_sum", "quality_sum", "quality_sq")


class Bucket:
    """Counts, sums and a latency sketch of the events whose time falls in one bucket."""

    __slots__ = (
        "calls",
        "complaints",
        "completed",
        "cost_nano",
        "errors",
        "index",
        "latency",
        "latency_sum",
        "quality_n",
        "quality_sq",
        "quality_sum",
        "rejected",
        "reviews",
        "safety_blocked",
        "schema_checked",
        "schema_failed",
        "succeeded",
        "timeouts",
    )

    def __init__(self, index: int, mapping: SketchMapping) -> None:
        self.index = index
        self.calls = 0
        self.errors = 0
        self.timeouts = 0
        self.schema_checked = 0
        self.schema_failed = 0
        self.safety_blocked = 0
        self.completed = 0
        self.succeeded = 0
        self.cost_nano = 0
        self.quality_n = 0
        self.reviews = 0
        self.rejected = 0
        self.complaints = 0
        self.latency_sum = 0.0
        self.quality_sum = 0.0
        self.quality_sq = 0.0
        """Sum of squared quality scores: the quality gate's change detector needs the second moment."""
        self.latency = QuantileSketch(mapping)

    def add_call(
        self,
        latency_ms: float,
        status: str,
        schema_valid: bool | None,
        safety_blocked: bool,
        task_success: bool | None,
        cost_nano: int,
        quality: float | None,
    ) -> None:
        """Count one call.

        ``RouteState.apply`` writes these same steps out inline (its per-call hot path
        cannot afford the call); ``test_route_state`` holds the two equal.
        """
        self.calls += 1
        self.cost_nano += cost_nano
        self.latency_sum += latency_ms
        if quality is not None:
            self.quality_n += 1
            self.quality_sum += quality
            self.quality_sq += quality * quality
        if schema_valid is not None:
            self.schema_checked += 1
        if task_success is not None:
            self.completed += 1
            if task_success:
                self.succeeded += 1
        if status != "ok" or safety_blocked or schema_valid is False:
            self.add_flags(status, safety_blocked, schema_valid is False)
        self.latency.add(latency_ms)

    def add_flags(self, status: str, safety_blocked: bool, schema_failed: bool) -> None:
        """The rare part of :meth:`add_call`: error, timeout, safety block, invalid output."""
        if status != "ok":
            self.errors += 1
            if status == "timeout":
                self.timeouts += 1
        if safety_blocked:
            self.safety_blocked += 1
        if schema_failed:
            self.schema_failed += 1

    def add_review(self, rejected: bool) -> None:
        self.reviews += 1
        if rejected:
            self.rejected += 1

    def add_complaint(self) -> None:
        self.complaints += 1

    def merge(self, other: Bucket) -> None:
        for name in INT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency_sum += other.latency_sum
        self.quality_sum += other.quality_sum
        self.quality_sq += other.quality_sq
        self.latency.merge(other.latency)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bucket):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in ("index", *INT_FIELDS, *_FLOAT_FIELDS)) and (
            self.latency == other.latency
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Bucket(index={self.index}, calls={self.calls}, reviews={self.reviews})"

    def write(self, w: Writer) -> None:
        """A presence mask, then only the non-zero fields: quiet buckets cost a few bytes."""
        mask = 0
        values: list[int] = []
        for bit, name in enumerate(INT_FIELDS):
            value = getattr(self, name)
            if value:
                mask |= 1 << bit
                values.append(value)
        if self.latency_sum:
            mask |= 1 << len(INT_FIELDS)
        if self.quality_sum:
            mask |= 1 << (len(INT_FIELDS) + 1)
        if self.quality_sq:
            mask |= 1 << (len(INT_FIELDS) + 2)  # a later bit: checkpoints without it still read
        w.uint(mask)
        for value in values:
            w.uint(value)
        if self.latency_sum:
            w.f64(self.latency_sum)
        if self.quality_sum:
            w.f64(self.quality_sum)
        if self.quality_sq:
            w.f64(self.quality_sq)
        if self.calls:
            self.latency.write(w)

    @classmethod
    def read(cls, r: Reader, index: int, mapping: SketchMapping) -> Bucket:
        bucket = cls(index, mapping)
        mask = r.uint()
        if mask >> (len(INT_FIELDS) + 3):
            raise r.fail(f"bucket field mask {mask:#x}")
        for bit, name in enumerate(INT_FIELDS):
            if mask >> bit & 1:
                setattr(bucket, name, r.uint())
        if mask >> len(INT_FIELDS) & 1:
            bucket.latency_sum = r.f64()
        if mask >> (len(INT_FIELDS) + 1) & 1:
            bucket.quality_sum = r.f64()
        if mask >> (len(INT_FIELDS) + 2) & 1:
            bucket.quality_sq = r.f64()
        if bucket.calls:
            bucket.latency = QuantileSketch.read(r, mapping)
            if bucket.latency.count != bucket.calls:
                raise r.fail(f"bucket sketch holds {bucket.latency.count} values for {bucket.calls} calls")
        if (
            bucket.errors > bucket.calls
            or bucket.timeouts > bucket.errors
            or bucket.schema_checked > bucket.calls
            or bucket.schema_failed > bucket.schema_checked
            or bucket.safety_blocked > bucket.calls
            or bucket.completed > bucket.calls
            or bucket.succeeded > bucket.completed
            or bucket.quality_n > bucket.calls
            or bucket.rejected > bucket.reviews
        ):
            raise r.fail("bucket counts are inconsistent")
        return bucket


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Sums over the buckets a query covered; rates are None when their denominator is 0."""

    start_ms: int
    end_ms: int
    buckets: int
    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    schema_checked: int = 0
    schema_failed: int = 0
    safety_blocked: int = 0
    completed: int = 0
    succeeded: int = 0
    cost_nano: int = 0
    quality_n: int = 0
    reviews: int = 0
    rejected: int = 0
    complaints: int = 0
    latency_sum: float = 0.0
    quality_sum: float = 0.0
    quality_sq: float = 0.0
    """Sum of squared quality scores (the quality detector's second moment)."""

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def timeout_rate(self) -> float | None:
        return self.timeouts / self.calls if self.calls else None

    @property
    def schema_failure_rate(self) -> float | None:
        return self.schema_failed / self.schema_checked if self.schema_checked else None

    @property
    def safety_block_rate(self) -> float | None:
        return self.safety_blocked / self.calls if self.calls else None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.completed if self.completed else None

    @property
    def rejection_rate(self) -> float | None:
        return self.rejected / self.reviews if self.reviews else None

    @property
    def mean_quality(self) -> float | None:
        return self.quality_sum / self.quality_n if self.quality_n else None

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_sum / self.calls if self.calls else None

    @property
    def cost_usd(self) -> float:
        return self.cost_nano / 1e9

    @property
    def cost_per_request_usd(self) -> float | None:
        return self.cost_nano / 1e9 / self.calls if self.calls else None
