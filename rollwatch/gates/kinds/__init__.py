"""Gate kinds: each kind in one module, every module registered in :data:`KINDS`.

A kind module holds the ticket record of the kind's fields, its evaluator, the count
windows it needs the per-route state to keep, its explanation and its semantic checks
(the parts of :class:`~rollwatch.gates.kinds.spec.GateKind`). Everything else looks a
kind up here by ``gate.kind``: the ticket model (:mod:`rollwatch.tickets.gates`), the
explanation and semantic checks (:mod:`rollwatch.tickets.explain`,
:mod:`rollwatch.tickets.semantics`), the loader's list of kinds, the evaluator dispatch
and detector bank (:mod:`rollwatch.gates.evaluate`), the engine's window sizes
(:mod:`rollwatch.gates.engine`) and the judge's ``sustained`` (:mod:`rollwatch.gates.judge`).

Adding a kind: write its module, add it to :data:`KINDS` and :data:`AnyGate` below (the
union is spelled out so type checkers see it), and to ``schemas/release-ticket.v1.json``;
``tests/gates/test_kinds.py`` fails until all of those agree.

Dependency direction. The ticket model is built from these records, so this package sits
*below* :mod:`rollwatch.tickets.model`:

    tickets.{fieldtypes, actions, durations, gatebase, wording, yamlsource}   (leaves)
        <- gates.{result, detector, mean_detector, bank, mean_guard, sequential} <- gates.kinds
        <- tickets.{gates, model, explain, semantics, load}
        <- gates.{evaluate, engine, judge, promotion}

A kind module takes names at run time only from the leaves above and from
``gates.{result, detector, mean_detector, bank, mean_guard, sequential}`` (which therefore
import the commands, the ticket catalogue and the streams for type checking only); never
from ``tickets.model``, ``tickets.gates`` or the ``rollwatch.tickets`` package itself.
Loading any ticket submodule runs the package, which loads the model and so this
package: :mod:`rollwatch.gates` imports the ticket package first so that this works
whichever side is imported first. A kind reads
the per-route state only through the objects it is handed and imports
:mod:`rollwatch.streams` for type checking only: loading a ticket must not pull in the
stream machinery (river, scipy). ``tests/gates/test_kinds.py`` checks both in fresh
interpreters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, TypeAlias

from pydantic import Field

from rollwatch.gates.kinds import (
    complaints,
    cost_per_task,
    drift,
    latency_regression,
    review_rejection,
    safety_blocks,
    schema_failure,
    threshold,
)
from rollwatch.gates.kinds.complaints import ComplaintsGate
from rollwatch.gates.kinds.cost_per_task import CostPerTaskGate
from rollwatch.gates.kinds.drift import DriftGate
from rollwatch.gates.kinds.latency_regression import LatencyRegressionGate
from rollwatch.gates.kinds.review_rejection import ReviewRejectionGate
from rollwatch.gates.kinds.safety_blocks import SafetyBlocksGate
from rollwatch.gates.kinds.schema_failure import SchemaFailureGate
from rollwatch.gates.kinds.spec import GateKind, WindowNeed
from rollwatch.gates.kinds.threshold import ThresholdGate

__all__ = ["GATE_KINDS", "KINDS", "AnyGate", "Gate", "GateKind", "WindowNeed"]

KINDS: Final[Mapping[str, GateKind[Any]]] = {
    spec.kind: spec
    for spec in (
        schema_failure.KIND,
        latency_regression.KIND,
        cost_per_task.KIND,
        review_rejection.KIND,
        safety_blocks.KIND,
        complaints.KIND,
        threshold.KIND,
        drift.KIND,
    )
}
"""Every gate kind by its ``kind`` value, in the schema's order."""

GATE_KINDS: Final = tuple(KINDS)

AnyGate: TypeAlias = (
    SchemaFailureGate
    | LatencyRegressionGate
    | CostPerTaskGate
    | ReviewRejectionGate
    | SafetyBlocksGate
    | ComplaintsGate
    | ThresholdGate
    | DriftGate
)
Gate = Annotated[AnyGate, Field(discriminator="kind")]
