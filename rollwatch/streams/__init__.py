"""The pure streaming core: windows, sketches and drift detectors per workflow and route.

No Kafka, no asyncio, no clock: state objects are fed events and asked questions at an
explicit event time (``now_ms``). Every state object serializes to compact bytes
(``to_bytes`` / ``from_bytes``) and restores exactly.
"""

from rollwatch.streams.bucket import Bucket, WindowStats
from rollwatch.streams.config import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    DriftFeed,
    DriftKind,
    DriftMetric,
    DriftSpec,
    StreamsConfig,
    WindowSpec,
)
from rollwatch.streams.count_window import CountWindow
from rollwatch.streams.dedup import DedupRing
from rollwatch.streams.drift import DriftEvent, DriftMonitor, MetricDetector
from rollwatch.streams.errors import (
    CorruptState,
    InvalidConfig,
    InvalidQuery,
    StateError,
    StateKindMismatch,
    StreamsError,
    UnsupportedVersion,
)
from rollwatch.streams.evidence import EVIDENCE_KINDS, ComplaintLog, Evidence, EvidenceKind, EvidenceReservoir
from rollwatch.streams.route_state import Applied, ComplaintsView, RouteState
from rollwatch.streams.sketch import QuantileSketch, SketchMapping
from rollwatch.streams.task_cost import TaskCostWindow, usd_to_nano
from rollwatch.streams.time_window import TimeWindows
from rollwatch.streams.workflow_state import BatchResult, WorkflowState

__all__ = [
    "DAY_MS",
    "EVIDENCE_KINDS",
    "HOUR_MS",
    "MINUTE_MS",
    "Applied",
    "BatchResult",
    "Bucket",
    "ComplaintLog",
    "ComplaintsView",
    "CorruptState",
    "CountWindow",
    "DedupRing",
    "DriftEvent",
    "DriftFeed",
    "DriftKind",
    "DriftMetric",
    "DriftMonitor",
    "DriftSpec",
    "Evidence",
    "EvidenceKind",
    "EvidenceReservoir",
    "InvalidConfig",
    "InvalidQuery",
    "MetricDetector",
    "QuantileSketch",
    "RouteState",
    "SketchMapping",
    "StateError",
    "StateKindMismatch",
    "StreamsConfig",
    "StreamsError",
    "TaskCostWindow",
    "TimeWindows",
    "UnsupportedVersion",
    "WindowSpec",
    "WindowStats",
    "WorkflowState",
    "usd_to_nano",
]
