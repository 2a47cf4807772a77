"""River drift detectors per route and metric, with a state format of our own.

One detector watches each metric (latency, quality, cost) of a route and records when
(event time) and on which metric it saw a change. What is fed depends on
:attr:`DriftSpec.feed <rollwatch.streams.config.DriftSpec.feed>`: one value per closed
fine bucket (its mean; the default, free per event) or every event's value.

Serialization, per detector kind (river objects do not pickle, and we would not):

* ADWIN keeps its window in river's Rust core, which exposes its own state bytes
  (``__getstate__``/``__setstate__``, bincode). We store those bytes as an opaque blob
  plus river's version; the frame's CRC guarantees they reach the Rust decoder
  unaltered (it panics on bad bytes, which we turn into :class:`CorruptState`).
* PageHinkley is six floats; KSWIN is its window, its counters and its random
  generator's full Mersenne Twister state (so a restored twin draws the same samples).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Final

import orjson
from river import drift as river_drift

from rollwatch.streams.codec import KIND_DRIFT, Reader, Writer, frame, unframe
from rollwatch.streams.config import DRIFT_KINDS, DRIFT_METRICS, DriftKind, DriftMetric, DriftSpec, ParamValue
from rollwatch.streams.errors import CorruptState, InvalidConfig

__all__ = ["DriftEvent", "DriftMonitor", "MetricDetector", "effective_params"]

_RIVER_VERSION: Final = version("river")
_CLASSES: Final[dict[str, Any]] = {
    "adwin": river_drift.ADWIN,
    "page_hinkley": river_drift.PageHinkley,
    "kswin": river_drift.KSWIN,
}
_MT_WORDS: Final = 625
_MAX_KEEP: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """A change one detector reported: on which metric, at what event time, on what value."""

    metric: DriftMetric
    at_ms: int
    """Event time: the event's ``ts_ms`` (event feed) or the bucket's start (bucket feed)."""
    value: float
    detector: DriftKind


def effective_params(spec: DriftSpec) -> dict[str, ParamValue]:
    """The detector's keyword arguments: the spec's, plus ADWIN ``clock=1`` under bucket feed.

    ADWIN tests for a change every ``clock`` values (default 32). Fed one value per
    minute that would delay detection by up to half an hour, and checking every value
    costs nothing at that rate, so bucket feed checks every value unless told otherwise.
    """
    params = dict(spec.params)
    if spec.kind == "adwin" and spec.feed == "bucket":
        params.setdefault("clock", 1)
    return params


def _build(kind: DriftKind, spec_params: Mapping[str, ParamValue]) -> Any:
    params: dict[str, Any] = dict(spec_params)
    try:
        return _CLASSES[kind](**params)
    except (TypeError, ValueError) as exc:
        raise InvalidConfig(f"cannot build {kind} detector with {dict(params)}: {exc}") from None


class MetricDetector:
    """One river detector; :meth:`update` says whether this value made it detect a change."""

    __slots__ = ("_detector", "kind", "params")

    def __init__(self, kind: DriftKind, params: Mapping[str, ParamValue] | None = None) -> None:
        self.kind: DriftKind = kind
        self.params = dict(params or {})
        self._detector = _build(kind, self.params)

    def update(self, value: float) -> bool:
        detector = self._detector
        detector.update(value)
        return bool(detector.drift_detected)

    @property
    def drift_detected(self) -> bool:
        return bool(self._detector.drift_detected)

    def write(self, w: Writer) -> None:
        det = self._detector
        w.flag(bool(det._drift_detected))
        if self.kind == "adwin":
            w.blob(det._helper.__getstate__())
        elif self.kind == "page_hinkley":
            for value in (
                det._x_mean.n,
                det._x_mean._mean,
                det._sum_increase,
                det._sum_decrease,
                det._min_increase,
                det._max_decrease,
            ):
                w.f64(float(value))
        else:
            w.f64(float(det.p_value))
            w.uint(det.n)
            w.uint(len(det.window))
            for value in det.window:
                w.f64(float(value))
            mt_version, words, gauss = det._rng.getstate()
            w.uint(mt_version)
            w.packed(list(words))
            w.flag(gauss is not None)
            if gauss is not None:
                w.f64(gauss)

    @classmethod
    def read(cls, r: Reader, kind: DriftKind, params: Mapping[str, ParamValue]) -> MetricDetector:
        detector = cls(kind, params)
        det = detector._detector
        drift_detected = r.flag()
        if kind == "adwin":
            blob = r.blob()
            try:
                det._helper.__setstate__(blob)
            except BaseException as exc:  # river's Rust core raises PanicException (a BaseException)
                if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                    raise
                raise r.fail(f"ADWIN state rejected by river {_RIVER_VERSION}: {exc}") from None
        elif kind == "page_hinkley":
            det._x_mean.n = r.f64()
            det._x_mean._mean = r.f64()
            det._sum_increase = r.f64()
            det._sum_decrease = r.f64()
            det._min_increase = r.f64()
            det._max_decrease = r.f64()
        else:
            det.p_value = r.f64()
            det.n = r.uint()
            size = r.bounded(0, det.window_size, "KSWIN window length")
            det.window = deque((r.f64() for _ in range(size)), maxlen=det.window_size)
            mt_version = r.uint()
            words = r.packed()
            gauss = r.f64() if r.flag() else None
            if len(words) != _MT_WORDS:
                raise r.fail(f"KSWIN random state has {len(words)} words, expected {_MT_WORDS}")
            rng = random.Random()
            try:
                rng.setstate((mt_version, tuple(words), gauss))
            except (ValueError, TypeError) as exc:
                raise r.fail(f"KSWIN random state rejected: {exc}") from None
            det._rng = rng
        det._drift_detected = drift_detected
        return detector


class DriftMonitor:
    """A detector per metric, and the recent detections of all of them."""

    __slots__ = ("_detectors", "_events", "_last", "detections", "keep", "spec")

    def __init__(self, spec: DriftSpec | None = None, keep: int = 16) -> None:
        if type(keep) is not int or not 1 <= keep <= _MAX_KEEP:
            raise ValueError(f"keep must be an int in [1, {_MAX_KEEP}], got {keep!r}")
        self.spec = spec if spec is not None else DriftSpec()
        self.keep = keep
        params = effective_params(self.spec)
        self._detectors: dict[DriftMetric, MetricDetector] = {
            metric: MetricDetector(self.spec.kind, params) for metric in self.spec.metrics
        }
        self._events: deque[DriftEvent] = deque(maxlen=keep)
        self._last: dict[DriftMetric, DriftEvent] = {}
        self.detections: dict[DriftMetric, int] = dict.fromkeys(self.spec.metrics, 0)
        """Changes detected per metric since the monitor was created."""

    def update(self, metric: DriftMetric, value: float, at_ms: int) -> DriftEvent | None:
        """Feed one value of one metric observed at event time ``at_ms``; metrics not watched are ignored."""
        detector = self._detectors.get(metric)
        if detector is None or not detector.update(value):
            return None
        event = DriftEvent(metric, at_ms, value, detector.kind)
        self._events.append(event)
        self._last[metric] = event
        self.detections[metric] += 1
        return event

    @property
    def events(self) -> tuple[DriftEvent, ...]:
        """The last ``keep`` detections, oldest first."""
        return tuple(self._events)

    def last(self, metric: DriftMetric) -> DriftEvent | None:
        return self._last.get(metric)

    def drift_detected_at_ms(self, metric: DriftMetric) -> int | None:
        """Event time of the latest change detected on ``metric``, None if never."""
        event = self._last.get(metric)
        return None if event is None else event.at_ms

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DriftMonitor):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DriftMonitor(kind={self.spec.kind!r}, detections={self.detections})"

    def write(self, w: Writer) -> None:
        w.blob(
            orjson.dumps(
                {
                    "kind": self.spec.kind,
                    "params": dict(self.spec.params),
                    "feed": self.spec.feed,
                    "metrics": list(self.spec.metrics),
                },
                option=orjson.OPT_SORT_KEYS,
            )
        )
        w.text(_RIVER_VERSION)
        w.uint(self.keep)
        for metric in self.spec.metrics:
            w.uint(self.detections[metric])
            self._detectors[metric].write(w)
        w.uint(len(self._events))
        for event in self._events:
            _write_event(w, event)
        w.uint(len(self._last))
        for metric, event in self._last.items():
            w.uint(DRIFT_METRICS.index(metric))
            _write_event(w, event)

    @classmethod
    def read(cls, r: Reader) -> DriftMonitor:
        try:
            raw = orjson.loads(r.blob())
            spec = DriftSpec(kind=raw["kind"], params=raw["params"], feed=raw["feed"], metrics=tuple(raw["metrics"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, InvalidConfig) as exc:
            raise r.fail(f"bad drift spec ({exc})") from None
        written_by = r.text()
        keep = r.bounded(1, _MAX_KEEP, "drift events kept")
        monitor = cls(spec, keep)
        params = effective_params(spec)
        for metric in spec.metrics:
            monitor.detections[metric] = r.uint()
            try:
                monitor._detectors[metric] = MetricDetector.read(r, spec.kind, params)
            except CorruptState as exc:
                if written_by != _RIVER_VERSION:
                    raise CorruptState(f"{exc} (state written with river {written_by})") from None
                raise
        for _ in range(r.bounded(0, keep, "drift events")):
            monitor._events.append(_read_event(r))
        for _ in range(r.bounded(0, len(DRIFT_METRICS), "last drift events")):
            index = r.bounded(0, len(DRIFT_METRICS) - 1, "drift metric")
            monitor._last[DRIFT_METRICS[index]] = _read_event(r)
        return monitor

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return frame(KIND_DRIFT, w.buf, compress=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> DriftMonitor:
        r = unframe(data, KIND_DRIFT)
        monitor = cls.read(r)
        r.end()
        return monitor


def _write_event(w: Writer, event: DriftEvent) -> None:
    w.uint(DRIFT_METRICS.index(event.metric))
    w.sint(event.at_ms)
    w.f64(event.value)
    w.uint(DRIFT_KINDS.index(event.detector))


def _read_event(r: Reader) -> DriftEvent:
    metric = DRIFT_METRICS[r.bounded(0, len(DRIFT_METRICS) - 1, "drift metric")]
    at_ms = r.sint()
    value = r.f64()
    kind = DRIFT_KINDS[r.bounded(0, len(DRIFT_KINDS) - 1, "drift detector kind")]
    return DriftEvent(metric, at_ms, value, kind)
