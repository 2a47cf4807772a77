"""Everything the gates read about one route of one workflow, updated one event at a time.

A :class:`RouteState` holds the exact count windows (errors, safety blocks, schema
failures, review rejections), the cost-per-successful-task window, the two-tier time
windows (counts, sums and latency sketches per bucket), the evidence reservoir, the
confirmed-complaint log and the drift detectors.

Time: every method takes event time explicitly. :meth:`RouteState.apply` takes the
watermark from its caller (the :class:`~rollwatch.streams.workflow_state.WorkflowState`
computes it per workflow); queries take ``now_ms`` and never look at a clock or at the
last event, so a timer tick with no traffic still sees windows slide.

Order: count windows and the task-cost window are "the last N" in *arrival* order
(the order of the Kafka partition), which for events within the allowed lateness may
differ from event-time order; time windows are by event time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from math import ceil, log2
from typing import Final, TypeVar

from rollwatch.events import Arm, CallEvent, ComplaintEvent, Event, ReviewEvent
from rollwatch.streams.bucket import Bucket, WindowStats
from rollwatch.streams.codec import KIND_ROUTE, Reader, Writer, frame, unframe
from rollwatch.streams.config import DAY_MS, MINUTE_MS, StreamsConfig
from rollwatch.streams.count_window import CountWindow
from rollwatch.streams.drift import DriftMonitor
from rollwatch.streams.errors import InvalidConfig, InvalidQuery
from rollwatch.streams.evidence import ComplaintLog, Evidence, EvidenceKind, EvidenceReservoir
from rollwatch.streams.sketch import QuantileSketch, mapping_for
from rollwatch.streams.task_cost import TaskCostWindow
from rollwatch.streams.time_window import TimeWindows

__all__ = ["Applied", "ComplaintsView", "RouteState"]

NO_WATERMARK: Final = -(1 << 62)
_ARMS: Final[tuple[Arm | None, ...]] = (None, "control", "candidate", "shadow")


class Applied(enum.Enum):
    """What became of one event."""

    APPLIED = "applied"
    LATE = "late"
    """Older than the watermark: counted in ``late_events``, left out of every window."""
    DUPLICATE = "duplicate"
    """Its ``event_id`` was seen recently: counted in ``duplicates``, dropped."""
    FOREIGN = "foreign"
    """It belongs to another workflow: counted in ``foreign_events``, dropped."""


_APPLIED: Final = Applied.APPLIED
_LATE: Final = Applied.LATE


@dataclass(frozen=True, slots=True)
class ComplaintsView:
    """Confirmed complaints with event time in a range, with the evidence the route still holds."""

    count: int
    exact: bool
    """False once more complaints arrived than the log keeps: ``count`` is then a lower bound."""
    items: tuple[Evidence, ...]


class RouteState:
    """Windows, sketches, evidence and drift detectors of one (workflow, route)."""

    __slots__ = (
        "_bucket_ms",
        "_drift_on_event",
        "_next_close_ms",
        "_watermark",
        "calls",
        "complaint_log",
        "complaints",
        "config",
        "drift",
        "errors",
        "evidence",
        "last_arm",
        "late_events",
        "review_rejections",
        "reviews",
        "route",
        "safety_blocks",
        "schema_failures",
        "tasks",
        "windows",
        "workflow",
    )

    def __init__(self, workflow: str, route: str, config: StreamsConfig | None = None) -> None:
        config = config if config is not None else StreamsConfig()
        if not isinstance(config, StreamsConfig):
            raise InvalidConfig(f"config must be a StreamsConfig, got {type(config).__name__}")
        self.workflow = workflow
        self.route = route
        self.config = config
        self.errors = CountWindow(config.error_window)
        """Calls with status error or timeout among the last ``error_window`` calls."""
        self.safety_blocks = CountWindow(config.safety_window)
        """Safety-blocked calls among the last ``safety_window`` calls."""
        self.schema_failures = CountWindow(config.schema_window)
        """Invalid outputs among the last ``schema_window`` calls with ``schema_valid`` not null."""
        self.review_rejections = CountWindow(config.review_window)
        """Rejected verdicts among the last ``review_window`` reviews."""
        self.tasks = TaskCostWindow(config.task_window)
        self.windows = TimeWindows(config.fine, config.coarse, mapping_for(config.sketch_accuracy))
        self.evidence = EvidenceReservoir(config.evidence_per_kind, config.evidence_sample_chars)
        self.complaint_log = ComplaintLog(config.complaint_times)
        self.drift = DriftMonitor(config.drift, config.drift_events_kept)
        self.calls = 0
        self.reviews = 0
        self.complaints = 0
        """Confirmed complaints applied (unconfirmed ones are applied but not counted)."""
        self.late_events = 0
        self.last_arm: Arm | None = None
        self._watermark = NO_WATERMARK
        self._next_close_ms = NO_WATERMARK
        self._drift_on_event = config.drift.feed == "event"
        self._bucket_ms = config.fine.bucket_ms
        if not self._drift_on_event:
            self.windows.on_close = self._feed_drift

    # -- updates ---------------------------------------------------------------------------

    def apply(self, event: Event, watermark_ms: int) -> Applied:
        """Fold one event in, or count it late if its time is before the watermark.

        The watermark only moves forward: a smaller one than already seen is ignored.
        Never raises for late, out-of-order or odd events.

        This is the per-event hot path (two thirds of events are calls), so the call
        case is written out here rather than spread over helpers: each Python call
        costs ~0.05-0.1 µs, as much as the arithmetic it would wrap.
        """
        if watermark_ms > self._watermark:
            self._watermark = watermark_ms
            if watermark_ms >= self._next_close_ms:
                self._close(watermark_ms)
        ts = event.ts_ms
        if ts < self._watermark:
            self.late_events += 1
            return _LATE
        windows = self.windows
        bucket = windows._last  # bucket_for's first test, inlined: events come in runs per minute
        if bucket is None or bucket.index != ts // self._bucket_ms:
            bucket = windows.bucket_for(ts)
            if bucket is None:  # older than the fine ring: only with a watermark lagging by > its horizon
                self.late_events += 1
                return _LATE
        arm = event.arm
        if arm is not None:
            self.last_arm = arm
        if type(event) is CallEvent:
            # Bucket.add_call, the count windows' common case (see CountWindow) and the
            # task window's step case, written out: this branch runs for every call.
            status = event.status
            failed = status != "ok"
            schema_valid = event.schema_valid
            blocked = event.safety_blocked
            success = event.task_success
            latency = event.latency_ms
            quality = event.quality_score
            cost_nano = round(event.cost_usd * 1e9)
            self.calls += 1
            bucket.calls += 1
            bucket.cost_nano += cost_nano
            bucket.latency_sum += latency
            if quality is not None:
                bucket.quality_n += 1
                bucket.quality_sum += quality
                bucket.quality_sq += quality * quality
            window = self.errors
            pos = window._pos
            if failed != window._bits[pos >> 3] >> (pos & 7) & 1 or pos == window._last:
                window.update(failed)
            else:
                window._pos = pos + 1
            window = self.safety_blocks
            pos = window._pos
            if blocked != window._bits[pos >> 3] >> (pos & 7) & 1 or pos == window._last:
                window.update(blocked)
            else:
                window._pos = pos + 1
            if schema_valid is not None:
                bucket.schema_checked += 1
                window = self.schema_failures
                pos = window._pos
                if (not schema_valid) != window._bits[pos >> 3] >> (pos & 7) & 1 or pos == window._last:
                    window.update(not schema_valid)
                else:
                    window._pos = pos + 1
            if success is None:
                self.tasks._pending += cost_nano  # TaskCostWindow.update's step case
            else:
                bucket.completed += 1
                if success:
                    bucket.succeeded += 1
                self.tasks.update(cost_nano, success)
            if failed or blocked or schema_valid is False:
                bucket.add_flags(status, blocked, schema_valid is False)
                self._call_evidence(event, failed, blocked)
            sketch = bucket.latency
            bins = sketch._bins
            mapping = sketch.mapping
            if bins is None or latency <= mapping.min_value:
                sketch.add(latency)  # frozen (a bucket reopened by a lagging watermark) or a zero latency
            else:
                sketch._count += 1
                key = ceil(log2(latency) * mapping.multiplier)
                bins[key] = bins.get(key, 0) + 1
            if self._drift_on_event:
                drift = self.drift
                drift.update("latency", latency, ts)
                drift.update("cost", event.cost_usd, ts)
                if quality is not None:
                    drift.update("quality", quality, ts)
        elif type(event) is ReviewEvent:
            rejected = event.verdict == "rejected"
            self.reviews += 1
            window = self.review_rejections
            pos = window._pos
            if rejected != window._bits[pos >> 3] >> (pos & 7) & 1 or pos == window._last:
                window.update(rejected)
            else:
                window._pos = pos + 1
            bucket.reviews += 1
            if rejected:
                bucket.rejected += 1
                self.evidence.add("rejected_review", event.event_id, ts, event.trace_id, event.call_event_id)
        elif type(event) is ComplaintEvent and event.confirmed:
            self.complaints += 1
            bucket.add_complaint()
            self.complaint_log.add(ts)
            self.evidence.add("complaint", event.event_id, ts, event.trace_id, event.call_event_id, event.sample)
        return _APPLIED

    def _call_evidence(self, event: CallEvent, failed: bool, blocked: bool) -> None:
        add = self.evidence.add
        if failed:
            add("timeout" if event.status == "timeout" else "error", event.event_id, event.ts_ms, event.trace_id)
        if blocked:
            add("safety_block", event.event_id, event.ts_ms, event.trace_id)
        if event.schema_valid is False:
            add("schema_failure", event.event_id, event.ts_ms, event.trace_id)

    def close_until(self, watermark_ms: int) -> None:
        """Advance the watermark without an event (an idle route at a timer tick).

        Closes the fine buckets ending at or before it (feeding bucket-fed drift
        detectors); events older than it will then count as late.
        """
        if watermark_ms > self._watermark:
            self._watermark = watermark_ms
            self._close(watermark_ms)

    def _close(self, watermark_ms: int) -> None:
        windows = self.windows
        windows.close_until(watermark_ms)
        next_close = windows.next_close_ms()
        self._next_close_ms = next_close if next_close is not None else watermark_ms + 1

    def _feed_drift(self, bucket: Bucket) -> None:
        at_ms = bucket.index * self.config.fine.bucket_ms
        drift = self.drift
        if bucket.calls:
            drift.update("latency", bucket.latency_sum / bucket.calls, at_ms)
            drift.update("cost", bucket.cost_nano / 1e9 / bucket.calls, at_ms)
        if bucket.quality_n:
            drift.update("quality", bucket.quality_sum / bucket.quality_n, at_ms)

    @property
    def watermark_ms(self) -> int | None:
        """The highest watermark this route has been given, None before any."""
        return None if self._watermark == NO_WATERMARK else self._watermark

    # -- queries ---------------------------------------------------------------------------

    def window(self, span_ms: int, now_ms: int) -> WindowStats:
        """Counts and sums over [now_ms - span_ms, now_ms): see ``time_window`` for the bucket rule."""
        return self.windows.stats(*_range(span_ms, now_ms))

    def window_between(self, start_ms: int, end_ms: int) -> WindowStats:
        return self.windows.stats(start_ms, end_ms)

    def latency_sketch(self, start_ms: int, end_ms: int) -> QuantileSketch:
        """The merged latency sketch of [start_ms, end_ms), for several quantiles at once."""
        return self.windows.latency_sketch(start_ms, end_ms)

    def latency_quantile(self, q: float, span_ms: int, now_ms: int) -> float | None:
        """The q-quantile of latency over [now_ms - span_ms, now_ms), None with no call.

        Cheap for one fine bucket (a per-minute p95 at any past ``now_ms`` within the fine
        horizon), so a gate can check how long a condition has held minute by minute.
        """
        return self.windows.latency_quantiles((q,), *_range(span_ms, now_ms))[0]

    def latency_quantiles(self, qs: tuple[float, ...], span_ms: int, now_ms: int) -> list[float | None]:
        return self.windows.latency_quantiles(tuple(qs), *_range(span_ms, now_ms))

    def baseline_latency_quantile(
        self,
        q: float,
        now_ms: int,
        *,
        recent_ms: int = 30 * MINUTE_MS,
        baseline_ms: int = 7 * DAY_MS,
    ) -> float | None:
        """The q-quantile over the ``baseline_ms`` before the current ``recent_ms`` window.

        That is [now - recent - baseline, now - recent): minute-exact at its recent end,
        starting on a coarse-bucket boundary at its old end (see ``time_window``).
        """
        end = now_ms - recent_ms
        return self.windows.latency_quantiles((q,), *_range(baseline_ms, end))[0]

    def calls_slower_than(self, latency_ms: float, start_ms: int, end_ms: int) -> tuple[int, int]:
        """(calls surely slower than ``latency_ms``, calls) in [start_ms, end_ms), bucketed as :meth:`window_between`.

        Counted from the buckets' latency sketches: a sketch bin holds values within the
        sketch's relative accuracy (``config.sketch_accuracy``, 1% by default) of each other,
        so calls in the bin that holds ``latency_ms`` (within about 2% of it) are counted as
        not slower. The count is exact for every other call and never too high, which is
        the safe side for a detector whose null is "few calls are slow".
        """
        fine, coarse = self.windows.buckets(start_ms, end_ms)
        mapping = self.windows.mapping
        edge = mapping.key(latency_ms) if latency_ms > mapping.min_value else None
        slow = calls = 0
        for bucket in (*fine, *coarse):
            calls += bucket.calls
            if bucket.calls:
                if edge is None:
                    slow += bucket.calls - bucket.latency.zeros
                else:
                    slow += sum(count for key, count in bucket.latency.items() if key > edge)
        return slow, calls

    def complaints_between(self, start_ms: int, end_ms: int) -> ComplaintsView:
        """Confirmed complaints with ``start_ms <= ts < end_ms`` (exact, not bucketed)."""
        if start_ms > end_ms:
            raise InvalidQuery(f"range start {start_ms} is after its end {end_ms}")
        count, exact = self.complaint_log.count_between(start_ms, end_ms)
        return ComplaintsView(count, exact, self.evidence.between("complaint", start_ms, end_ms))

    def complaints_since(self, since_ms: int, now_ms: int) -> ComplaintsView:
        """Confirmed complaints since a release (``since_ms``) up to ``now_ms``."""
        return self.complaints_between(since_ms, now_ms)

    def evidence_items(self, kind: EvidenceKind | None = None) -> tuple[Evidence, ...]:
        return self.evidence.items(kind)

    # -- serialization ---------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RouteState):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RouteState({self.workflow!r}, {self.route!r}, calls={self.calls}, late={self.late_events})"

    def write(self, w: Writer) -> None:
        """The route without its config (a workflow writes the config once for all routes)."""
        w.text(self.workflow)
        w.text(self.route)
        w.uint(_ARMS.index(self.last_arm))
        w.uint(self.calls)
        w.uint(self.reviews)
        w.uint(self.complaints)
        w.uint(self.late_events)
        w.sint(self._watermark)
        w.sint(self._next_close_ms)
        self.errors.write(w)
        self.safety_blocks.write(w)
        self.schema_failures.write(w)
        self.review_rejections.write(w)
        self.tasks.write(w)
        self.windows.write(w)
        self.evidence.write(w)
        self.complaint_log.write(w)
        self.drift.write(w)

    @classmethod
    def read(cls, r: Reader, config: StreamsConfig, task_total: bool = True) -> RouteState:
        """``task_total``: the frame writes the task window's completion count (route frames
        from version 2, workflow frames from version 3)."""
        workflow = r.text()
        route = r.text()
        state = cls(workflow, route, config)
        state.last_arm = _ARMS[r.bounded(0, len(_ARMS) - 1, "arm")]
        state.calls = r.uint()
        state.reviews = r.uint()
        state.complaints = r.uint()
        state.late_events = r.uint()
        state._watermark = r.sint()
        state._next_close_ms = r.sint()
        state.errors = _sized(r, CountWindow.read(r), config.error_window, "error window")
        state.safety_blocks = _sized(r, CountWindow.read(r), config.safety_window, "safety window")
        state.schema_failures = _sized(r, CountWindow.read(r), config.schema_window, "schema window")
        state.review_rejections = _sized(r, CountWindow.read(r), config.review_window, "review window")
        state.tasks = _sized(r, TaskCostWindow.read(r, task_total), config.task_window, "task window")
        windows = TimeWindows.read(r)
        if (windows.fine, windows.coarse, windows.mapping.accuracy) != (
            config.fine,
            config.coarse,
            float(config.sketch_accuracy),
        ):
            raise r.fail("time windows do not match the config")
        state.windows = windows
        state.evidence = EvidenceReservoir.read(r)
        state.complaint_log = ComplaintLog.read(r)
        state.drift = DriftMonitor.read(r)
        if not state._drift_on_event:
            windows.on_close = state._feed_drift
        return state

    def to_bytes(self) -> bytes:
        """Compact bytes (zlib over the binary form), restored exactly by :meth:`from_bytes`."""
        w = Writer()
        w.blob(self.config.to_json())
        self.write(w)
        return frame(KIND_ROUTE, w.buf, compress=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> RouteState:
        r = unframe(data, KIND_ROUTE)
        config = _read_config(r)
        state = cls.read(r, config, r.version >= 2)
        r.end()
        return state


def _range(span_ms: int, now_ms: int) -> tuple[int, int]:
    if span_ms <= 0:
        raise InvalidQuery(f"span_ms must be > 0, got {span_ms}")
    return now_ms - span_ms, now_ms


_Window = TypeVar("_Window", CountWindow, TaskCostWindow)


def _sized(r: Reader, window: _Window, size: int, name: str) -> _Window:
    if window.size != size:
        raise r.fail(f"{name} holds {window.size} items, the config says {size}")
    return window


def _read_config(r: Reader) -> StreamsConfig:
    raw = r.blob()
    try:
        return StreamsConfig.from_json(raw)
    except InvalidConfig as exc:
        raise r.fail(f"bad embedded config ({exc})") from None
