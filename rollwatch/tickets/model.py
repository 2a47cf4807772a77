"""The release ticket v1 as pydantic models (the twin of ``schemas/release-ticket.v1.json``).

These models check *structure*: types, closed field sets, ranges. Rules that relate two
parts of a ticket (control and candidate differ, every gate action is granted to
someone, message keys exist, ...) live in :mod:`rollwatch.tickets.semantics` and run in
:func:`rollwatch.tickets.load.validate_ticket_data`; use that, not ``Ticket.model_validate``,
to accept a ticket. Keeping the layers apart is what lets the JSON Schema and these
models be compared document by document.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import BeforeValidator, Field

from rollwatch.tickets.actions import (
    Action,
    AnyAction,
    DisableSegment,
    DisableTools,
    FlagOverrides,
    FreezeRollout,
    ReduceRollout,
    RestorePrompt,
    RestoreRoute,
    RestoreRouteAndPrompt,
    SetActionMode,
    SetRouteMode,
)
from rollwatch.tickets.catalogue import (
    ACTION_TYPES,
    ActionType,
    EvidenceKind,
    FallbackPath,
    RouteMode,
)
from rollwatch.tickets.durations import Duration, PositiveDuration
from rollwatch.tickets.fieldtypes import (
    Count,
    Date,
    MessageKey,
    Name,
    NonNegCount,
    NotNull,
    PositivePercent,
    StrictModel,
    Text,
    UniqueTuple,
    as_tuple,
)
from rollwatch.tickets.gates import (
    AnyGate,
    ComplaintsGate,
    CostPerTaskGate,
    DriftGate,
    Gate,
    LadderStep,
    LatencyRegressionGate,
    ReviewRejectionGate,
    SafetyBlocksGate,
    SchemaFailureGate,
    ThresholdGate,
)

__all__ = [
    "Action",
    "AnyAction",
    "AnyGate",
    "Authority",
    "Canary",
    "ComplaintsGate",
    "CostPerTaskGate",
    "CustomerMessages",
    "DisableSegment",
    "DisableTools",
    "DoublingPromotion",
    "DriftGate",
    "Estimates",
    "Fallback",
    "FlagOverrides",
    "FreezeRollout",
    "Gate",
    "LadderStep",
    "LatencyRegressionGate",
    "Owners",
    "Promotion",
    "ReduceRollout",
    "RestorePrompt",
    "RestoreRoute",
    "RestoreRouteAndPrompt",
    "Retrieval",
    "ReviewRejectionGate",
    "RollbackObjective",
    "Route",
    "SafetyBlocksGate",
    "SchemaFailureGate",
    "SetActionMode",
    "SetRouteMode",
    "StepPromotion",
    "ThresholdGate",
    "Ticket",
]


class Retrieval(StrictModel):
    """The retrieval state a route answers from; restoring it is part of restoring the route."""

    index_build_id: Name
    corpus_cutoff: Date
    embedding_route: Annotated[Name | None, NotNull] = None
    reranker: Annotated[Name | None, NotNull] = None


class Route(StrictModel):
    """A complete, reconstructable model route: everything a rollback has to put back.

    ``route`` is the string telemetry events carry in their ``route`` field; it is what
    the worker uses to tell control from candidate traffic and what ``ai.route.provider``
    is set to.
    """

    route: Name
    provider: Name
    account: Annotated[Name | None, NotNull] = None
    model_tier: Name
    model_id: Name
    region: Annotated[Name | None, NotNull] = None
    prompt_version: Name
    prompt_commit: Annotated[Name | None, NotNull] = None
    retrieval: Annotated[Retrieval | None, NotNull] = None
    tool_schema_version: Annotated[Name | None, NotNull] = None
    """Absent when the route calls no tools."""
    output_schema_version: Name
    action_mode: Literal["auto", "draft", "queued", "review"]
    """The ``ai.action.mode`` this route runs with."""
    route_mode: RouteMode
    """The ``ai.route.mode`` this route runs with."""
    approved_on: Annotated[Date | None, NotNull] = None
    notes: Annotated[Text | None, NotNull] = None


class StepPromotion(StrictModel):
    """Promote through fixed percents, e.g. ``[5, 10, 25, 50, 100]``."""

    rule: Literal["steps"]
    percents: Annotated[tuple[PositivePercent, ...], BeforeValidator(as_tuple), Field(min_length=1)]


class DoublingPromotion(StrictModel):
    """The seed-2 rule, with quality read the right way round (higher is better).

    Every ``window``: candidate/control ratio of ``metric`` at or above
    ``promote_at_ratio`` (0.99 = within 1%) doubles the percent up to ``max_percent``;
    below ``rollback_below_ratio`` (0.95) sets it to 0.
    """

    rule: Literal["doubling"]
    metric: Literal["avg_quality_score", "task_success_rate", "review_approval_rate"]
    window: PositiveDuration
    min_samples: Count
    promote_at_ratio: Annotated[float, Field(gt=0)]
    rollback_below_ratio: Annotated[float, Field(gt=0, le=1)]
    max_percent: PositivePercent


Promotion = Annotated[StepPromotion | DoublingPromotion, Field(discriminator="rule")]


class Canary(StrictModel):
    """How exposure grows: offline run, first percent and duration, then promotion.

    ``hold`` is promotion hysteresis: every gate must have been green for this long at
    the current percent before the next step. ``release_window`` is the period the
    complaints gate counts within.
    """

    plan: Text
    offline_tickets: NonNegCount
    start_percent: PositivePercent
    duration: PositiveDuration
    promotion: Promotion
    hold: Duration
    release_window: PositiveDuration
    bucketing: Literal["sha256", "md5-seed"] = "sha256"
    """How gateways split users (rollwatch.gateway.bucketing): salted SHA-256, or the seed's md5 % 100."""


class Estimates(StrictModel):
    cost_per_successful_task_usd: Annotated[float, Field(gt=0)]


class Owners(StrictModel):
    """Who holds each role, named before the first production request reaches the candidate."""

    engineering_owner: Name
    platform_owner: Name
    product_owner: Name
    risk_owner: Name
    support_owner: Name
    incident_commander: Name
    automation: Name
    """The automated principal, normally ``rollwatch-worker``."""


def _grant(value: object) -> object:
    if value == "all" and type(value) is str:
        return ACTION_TYPES
    return as_tuple(value)


Grant: TypeAlias = Annotated[tuple[ActionType, ...], BeforeValidator(_grant), UniqueTuple]
"""``all`` or a list of action types; ``all`` is stored expanded."""


class Authority(StrictModel):
    """Which action types each role may issue; an empty list is an explicit "advises only"."""

    engineering_owner: Grant
    platform_owner: Grant
    product_owner: Grant
    risk_owner: Grant
    support_owner: Grant
    incident_commander: Grant
    automation: Grant


class CustomerMessages(StrictModel):
    """The user-facing text to publish per action type; actions not listed are invisible."""

    on_action: dict[ActionType, MessageKey]
    texts: Annotated[dict[MessageKey, Text] | None, NotNull] = None
    """Extra or overriding texts on top of the built-in catalogue."""


class Fallback(StrictModel):
    use_when: Annotated[Text | None, NotNull] = None
    do_not_use_when: Annotated[Text | None, NotNull] = None
    route: Annotated[Name | None, NotNull] = None


class RollbackObjective(StrictModel):
    """How fast the team has proven it can restore (the seed: under 15 minutes)."""

    restore_within: PositiveDuration
    reduce_automation_within: Annotated[PositiveDuration | None, NotNull] = None


class Ticket(StrictModel):
    """A release ticket: the written rollback plan, fixed before the canary starts."""

    format: Literal["rollwatch.release-ticket/v1"]
    ticket: Name
    revision: Count
    workflow: Name
    """The ``workflow`` string of the telemetry events this ticket governs."""
    description: Text
    control: Route
    candidate: Route
    canary: Canary
    estimates: Annotated[Estimates | None, NotNull] = None
    gates: Annotated[tuple[Gate, ...], BeforeValidator(as_tuple), Field(min_length=1)]
    first_rollback: Annotated[tuple[Action, ...], BeforeValidator(as_tuple), Field(min_length=1)]
    evidence: Annotated[tuple[EvidenceKind, ...], BeforeValidator(as_tuple), Field(min_length=1), UniqueTuple]
    owners: Owners
    authority: Authority
    customer_messages: CustomerMessages
    fallbacks: Annotated[dict[FallbackPath, Fallback] | None, NotNull] = None
    rollback_objective: RollbackObjective

    def gate(self, name: str) -> AnyGate:
        """The gate called ``name``; names are unique in an accepted ticket."""
        for gate in self.gates:
            if gate.name == name:
                return gate
        raise KeyError(name)
