"""Rollback gates: one record per trigger kind, each with explicit parameters and direction.

Field names carry their comparison so nobody has to guess it: ``*_above`` is strictly
greater, ``*_below`` strictly less, ``*_at_least`` greater or equal. Rates and margins
are fractions (0.01 = 1%). A gate maps to one ``action`` or to a ``ladder`` of steps,
each taken only while the gate stays breached after the previous step has settled.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, TypeAlias

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from rollwatch.tickets.actions import Action, AnyAction
from rollwatch.tickets.durations import Duration, PositiveDuration
from rollwatch.tickets.fieldtypes import (
    Count,
    Multiplier,
    Name,
    NotNull,
    RateAbove,
    RateBelow,
    RateMargin,
    StrictModel,
    as_tuple,
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

NEITHER_ACTION_NOR_LADDER: Final = "needs an action or a ladder"
BOTH_ACTION_AND_LADDER: Final = "has both action and ladder; keep one"

Alpha = Annotated[float, Field(gt=0, lt=1)]


class NoGuard(StrictModel):
    """Act on the raw comparison once ``min_samples`` is reached."""

    method: Literal["none"]


class MsprtGuard(StrictModel):
    """Mixture sequential probability ratio test: safe to check after every event."""

    method: Literal["msprt"]
    alpha: Alpha


class ConfidenceSequenceGuard(StrictModel):
    """Anytime-valid confidence sequence on the compared quantity."""

    method: Literal["confidence_sequence"]
    alpha: Alpha


Guard = Annotated[NoGuard | MsprtGuard | ConfidenceSequenceGuard, Field(discriminator="method")]


class LadderStep(StrictModel):
    """One rung: take ``action``; if still breached ``wait`` later, go to the next rung."""

    action: Action
    wait: Annotated[Duration | None, NotNull] = None


class _GateBase(StrictModel):
    name: Name
    min_samples: Count
    segment: Annotated[Name | None, NotNull] = None
    """Evaluate only this segment's traffic."""
    by_segment: bool = False
    """Evaluate each segment on its own; ``affected`` in actions then means the breached ones."""
    action: Annotated[Action | None, NotNull] = None
    ladder: Annotated[tuple[LadderStep, ...] | None, NotNull, BeforeValidator(as_tuple), Field(min_length=1)] = None

    @model_validator(mode="after")
    def _one_response(self) -> _GateBase:
        if self.action is None and self.ladder is None:
            raise PydanticCustomError("action_or_ladder", NEITHER_ACTION_NOR_LADDER)
        if self.action is not None and self.ladder is not None:
            raise PydanticCustomError("action_or_ladder", BOTH_ACTION_AND_LADDER)
        return self

    @property
    def steps(self) -> tuple[LadderStep, ...]:
        """The response as a ladder; a single ``action`` is a one-rung ladder."""
        if self.ladder is not None:
            return self.ladder
        assert self.action is not None  # guaranteed by _one_response
        return (LadderStep(action=self.action),)

    @property
    def actions(self) -> tuple[AnyAction, ...]:
        return tuple(step.action for step in self.steps)


class _GuardedGate(_GateBase):
    guard: Annotated[Guard | None, NotNull] = None


class SchemaFailureGate(_GuardedGate):
    """Candidate output fails schema validation although the control's rarely does.

    Rates count calls whose ``schema_valid`` is false among those with a verdict (not
    null), over each arm's last ``window_calls`` such calls. ``min_samples``: calls with a
    verdict each arm needs in its window.
    """

    kind: Literal["schema_failure"]
    window_calls: Count
    rate_above: RateAbove
    control_rate_below: RateBelow


class LatencyRegressionGate(_GuardedGate):
    """Candidate end-to-end latency percentile regresses against the control's history.

    Breached when the candidate's ``percentile`` of ``latency_ms`` over the trailing
    ``window`` is above ``multiplier_above`` times the control route's same percentile
    over the ``baseline_window`` before the canary, continuously for ``sustained``.
    ``min_samples``: candidate calls in ``window``.
    """

    kind: Literal["latency_regression"]
    percentile: Annotated[float, Field(gt=0, lt=100)]
    window: PositiveDuration
    baseline_window: PositiveDuration
    multiplier_above: Multiplier
    sustained: PositiveDuration


class CostPerTaskGate(_GuardedGate):
    """Cost per successful task runs above the ticket's approved estimate.

    Over the candidate's last ``window_tasks`` completed calls (``task_success`` not
    null): sum of ``cost_usd`` / count of ``task_success`` true, compared with
    ``multiplier_above`` x ``estimates.cost_per_successful_task_usd``. ``min_samples``:
    completed candidate tasks.
    """

    kind: Literal["cost_per_task"]
    window_tasks: Count
    multiplier_above: Multiplier


class ReviewRejectionGate(_GuardedGate):
    """Human reviewers reject the candidate's outputs more often than the control's.

    Breached when candidate rejection rate minus control rejection rate, each over the
    arm's last ``window_reviews`` review events, is at least ``worse_by_at_least``.
    ``min_samples``: reviews each arm needs.
    """

    kind: Literal["review_rejection"]
    window_reviews: Count
    worse_by_at_least: RateMargin


class SafetyBlocksGate(_GuardedGate):
    """Safety or policy blocks rise against the control on comparable requests.

    Breached when the candidate's ``safety_blocked`` rate is at least
    ``multiplier_at_least`` times the control's, each over the arm's last
    ``window_requests`` calls. The control rate is taken as at least
    ``control_rate_floor`` (absent: 1 / ``window_requests``) so a single block against
    zero control blocks is not an infinite ratio. ``min_samples``: calls each arm needs.
    """

    kind: Literal["safety_blocks"]
    window_requests: Count
    multiplier_at_least: Multiplier
    control_rate_floor: Annotated[RateBelow | None, NotNull] = None


class ComplaintsGate(_GateBase):
    """Confirmed customer complaints about AI behaviour within one release window.

    Counts complaint events with ``confirmed`` true on the candidate arm within the
    ticket's ``canary.release_window``; with ``require_sample`` only those carrying an
    output ``sample``. ``min_samples``: candidate calls in the window (complaints about a
    route that served nothing are misattributed).
    """

    kind: Literal["complaints"]
    confirmed_at_least: Count
    require_sample: bool


ThresholdMetric: TypeAlias = Literal["error_rate", "p95_latency_ms", "avg_quality_score", "cost_per_request"]


class ThresholdGate(_GuardedGate):
    """An absolute limit on one candidate metric over a trailing window.

    ``error_rate``: calls with status error or timeout / calls; ``p95_latency_ms``: 95th
    percentile of ``latency_ms``; ``avg_quality_score``: mean ``quality_score`` of scored
    calls; ``cost_per_request``: mean ``cost_usd``. ``direction`` says which side is a
    breach (strictly). ``min_samples``: candidate calls (scored calls for quality).
    """

    kind: Literal["threshold"]
    metric: ThresholdMetric
    direction: Literal["above", "below"]
    value: Annotated[float, Field(ge=0)]
    window: PositiveDuration


class AdwinDetector(StrictModel):
    type: Literal["adwin"]
    delta: Annotated[float, Field(gt=0, lt=1)]
    grace_period: Annotated[Count | None, NotNull] = None
    min_window_length: Annotated[Count | None, NotNull] = None


class PageHinkleyDetector(StrictModel):
    type: Literal["page_hinkley"]
    delta: Annotated[float, Field(ge=0)]
    threshold: Annotated[float, Field(gt=0)]
    alpha: Annotated[float | None, NotNull, Field(gt=0, le=1)] = None
    min_instances: Annotated[Count | None, NotNull] = None


class KswinDetector(StrictModel):
    type: Literal["kswin"]
    alpha: Alpha
    window_size: Annotated[Count | None, NotNull] = None
    stat_size: Annotated[Count | None, NotNull] = None


Detector = Annotated[AdwinDetector | PageHinkleyDetector | KswinDetector, Field(discriminator="type")]
DriftMetric: TypeAlias = Literal["latency", "quality", "cost"]


class DriftGate(_GateBase):
    """A change-point detector sees the candidate's metric move while the control's holds.

    Metrics: ``latency`` = ``latency_ms``, ``quality`` = ``quality_score``, ``cost`` =
    ``cost_usd`` of calls. Breached when the detector on the candidate stream reports a
    drift in ``direction`` within the trailing ``window`` and the same detector on the
    control stream reported none in that window. ``min_samples``: observations each
    arm's detector needs before its verdict counts.
    """

    kind: Literal["drift"]
    metric: DriftMetric
    direction: Literal["increase", "decrease"]
    detector: Detector
    window: PositiveDuration


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

GATE_KINDS: Final = (
    "schema_failure",
    "latency_regression",
    "cost_per_task",
    "review_rejection",
    "safety_blocks",
    "complaints",
    "threshold",
    "drift",
)
