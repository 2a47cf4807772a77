"""Prometheus metrics of one worker, in a registry of its own.

A private :class:`CollectorRegistry` (not the process-global one) keeps two workers in one
process, or a worker in a test, from colliding, and means nothing is registered at import.
Gate values, consumer lag and engine counts are read from the live engines at scrape time
by a custom collector, so a workflow that moves to another worker disappears from here
instead of lingering as a stale series.

Workflow names come from untrusted input, so the ``workflow`` label is capped
(:class:`LabelCap`): past the cap, new names are reported as ``"_other"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rollwatch.agents.ports import GateReading
from rollwatch.gates.result import STATES

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "OTHER", "STAGES", "GateSnapshot", "LabelCap", "Metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4"
OTHER: Final = "_other"
_STATES: Final = STATES
LATENCY_BUCKETS: Final = (
    *(0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0),
    *(3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0),
)
"""Detection latency: fine under 2 s, where the p99 target (1 s) is read, coarse beyond."""
STAGE_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
STAGES: Final = ("wait", "fold", "judge", "commands", "checkpoint", "ack")
"""Where a batch's time goes, in order; ``wait`` runs from the oldest message's produce time to the batch's start."""


class LabelCap:
    """Admits at most ``limit`` distinct label values; the rest become :data:`OTHER`."""

    def __init__(self, limit: int = 1000) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


@dataclass(frozen=True, slots=True)
class GateSnapshot:
    """What the scrape-time collector needs from the worker."""

    readings: Iterable[tuple[str, GateReading]]
    lag: Mapping[int, int]
    engines: int
    partitions: int


class _LiveCollector(Collector):
    def __init__(self, snapshot: Callable[[], GateSnapshot], cap: LabelCap) -> None:
        self._snapshot = snapshot
        self._cap = cap

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        value = GaugeMetricFamily(
            "rollwatch_gate_value",
            "Last evaluated value of a gate metric",
            labels=["workflow", "gate", "arm", "metric"],
        )
        threshold = GaugeMetricFamily(
            "rollwatch_gate_threshold", "Threshold of a gate", labels=["workflow", "gate", "arm", "metric"]
        )
        state = GaugeMetricFamily(
            "rollwatch_gate_state", "1 for the current state of a gate", labels=["workflow", "gate", "arm", "state"]
        )
        for workflow, reading in snap.readings:
            labels = [self._cap(workflow), reading.gate, reading.arm, reading.metric]
            if reading.value is not None and math.isfinite(reading.value):
                value.add_metric(labels, reading.value)
            if reading.threshold is not None and math.isfinite(reading.threshold):
                threshold.add_metric(labels, reading.threshold)
            for name in _STATES:
                state.add_metric([labels[0], reading.gate, reading.arm, name], 1.0 if reading.state == name else 0.0)
        lag = GaugeMetricFamily(
            "rollwatch_consumer_lag", "Telemetry messages not yet processed, per partition", labels=["partition"]
        )
        for partition, behind in sorted(snap.lag.items()):
            lag.add_metric([str(partition)], float(behind))
        engines = GaugeMetricFamily("rollwatch_engines", "Workflow engines held by this worker")
        engines.add_metric([], float(snap.engines))
        partitions = GaugeMetricFamily("rollwatch_assigned_partitions", "Telemetry partitions owned by this worker")
        partitions.add_metric([], float(snap.partitions))
        yield from (value, threshold, state, lag, engines, partitions)


class Metrics:
    """Counters and histograms the worker updates as it goes."""

    def __init__(self, *, label_limit: int = 1000) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.workflow = LabelCap(label_limit)
        r = self.registry
        self.messages = Counter("rollwatch_messages", "Telemetry messages consumed", registry=r)
        self.events = Counter("rollwatch_events", "Valid telemetry events consumed", ["workflow"], registry=r)
        self.invalid = Counter(
            "rollwatch_events_invalid", "Rejected telemetry items (dead-lettered)", ["workflow"], registry=r
        )
        self.late = Counter(
            "rollwatch_events_late", "Events the engine found too late to count", ["workflow"], registry=r
        )
        self.duplicates = Counter(
            "rollwatch_events_duplicate", "Events the engine had already seen", ["workflow"], registry=r
        )
        self.replayed = Counter(
            "rollwatch_events_replayed",
            "Redelivered events skipped because the checkpoint already holds them",
            ["workflow"],
            registry=r,
        )
        self.deadletters = Counter("rollwatch_deadletters", "Dead-letter records produced", ["source"], registry=r)
        self.misrouted = Counter(
            "rollwatch_telemetry_misrouted",
            "Telemetry events on a partition other than murmur2(workflow): the producer's partitioner is not Java's",
            ["workflow"],
            registry=r,
        )
        self.decisions = Counter(
            "rollwatch_decisions", "Emissions returned by engines", ["workflow", "action"], registry=r
        )
        self.commands = Counter(
            "rollwatch_commands_emitted", "Commands published to the control topic", ["workflow", "action"], registry=r
        )
        self.suppressed = Counter(
            "rollwatch_commands_suppressed",
            "Emissions not published because this process already sent that command_id",
            ["workflow"],
            registry=r,
        )
        self.tickets = Counter("rollwatch_tickets", "Release tickets read", ["result"], registry=r)
        self.ticket_refusals = Counter(
            "rollwatch_tickets_refused",
            "Releases records refused: unsigned, forged, untrusted key, tombstone, older revision",
            ["code"],
            registry=r,
        )
        self.engine_errors = Counter(
            "rollwatch_engine_errors", "Exceptions raised by an engine", ["workflow", "stage"], registry=r
        )
        self.batches = Counter("rollwatch_batches", "Telemetry batches processed", registry=r)
        self.checkpoints = Counter("rollwatch_checkpoints", "State-table records written", registry=r)
        self.changelog_resets = Counter(
            "rollwatch_changelog_resets",
            "Changelog partitions found shorter than recovery had read (the broker lost them); rebuilt from memory",
            ["partition"],
            registry=r,
        )
        self.undecodable = Counter(
            "rollwatch_undecodable_batches",
            "Record batches the consumer could not decode (codec, CRC, corrupt bytes) and stepped over",
            ["topic"],
            registry=r,
        )
        self.detection_latency = Histogram(
            "rollwatch_detection_latency_seconds",
            "Broker ack of the command (wall clock) minus the event time of the breaching event",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "rollwatch_batch_stage_seconds",
            "Seconds a telemetry batch spends in each stage (wait: oldest message's produce time to batch start)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.stages = {name: self.stage.labels(name) for name in STAGES}

    def watch(self, snapshot: Callable[[], GateSnapshot]) -> None:
        """Report live engine state (gates, lag) at every scrape."""
        self.registry.register(_LiveCollector(snapshot, self.workflow))

    def render(self) -> bytes:
        return generate_latest(self.registry)
