"""Rollback gates: one record per trigger kind, each with explicit parameters and direction.

The records live with the rest of their kind (evaluator, windows, explanation, semantic
checks) in :mod:`rollwatch.gates.kinds`; the shared fields, guards and ladder steps in
:mod:`rollwatch.tickets.gatebase`. This module keeps the names the ticket code and its
users import.
"""

from __future__ import annotations

from rollwatch.gates.kinds import GATE_KINDS, AnyGate, Gate
from rollwatch.gates.kinds.complaints import ComplaintsGate
from rollwatch.gates.kinds.cost_per_task import CostPerTaskGate
from rollwatch.gates.kinds.drift import (
    AdwinDetector,
    Detector,
    DriftGate,
    DriftMetric,
    KswinDetector,
    PageHinkleyDetector,
)
from rollwatch.gates.kinds.latency_regression import LatencyRegressionGate
from rollwatch.gates.kinds.review_rejection import ReviewRejectionGate
from rollwatch.gates.kinds.safety_blocks import SafetyBlocksGate
from rollwatch.gates.kinds.schema_failure import SchemaFailureGate
from rollwatch.gates.kinds.threshold import ThresholdGate, ThresholdMetric
from rollwatch.tickets.gatebase import (
    BOTH_ACTION_AND_LADDER,
    NEITHER_ACTION_NOR_LADDER,
    ConfidenceSequenceGuard,
    Guard,
    LadderStep,
    MsprtGuard,
    NoGuard,
)

__all__ = [
    "BOTH_ACTION_AND_LADDER",
    "GATE_KINDS",
    "NEITHER_ACTION_NOR_LADDER",
    "ThresholdMetric",
    "AdwinDetector",
    "AnyGate",
    "ComplaintsGate",
    "ConfidenceSequenceGuard",
    "CostPerTaskGate",
    "Detector",
    "DriftGate",
    "DriftMetric",
    "Gate",
    "Guard",
    "KswinDetector",
    "LadderStep",
    "LatencyRegressionGate",
    "MsprtGuard",
    "NoGuard",
    "PageHinkleyDetector",
    "ReviewRejectionGate",
    "SafetyBlocksGate",
    "SchemaFailureGate",
    "ThresholdGate",
]
