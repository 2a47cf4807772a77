"""The fixed vocabularies of a release ticket, taken from the rollback-plan seed.

Kept apart from the models so the CLI, the explainer and the worker can show the
built-in texts (customer messages, fallback notes, role duties) without a ticket.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias, get_args

__all__ = [
    "ACTION_MODES",
    "ACTION_TYPES",
    "CUSTOMER_MESSAGES",
    "EVIDENCE_KINDS",
    "FALLBACK_NOTES",
    "FALLBACK_PATHS",
    "FLAG_NAMES",
    "ROLES",
    "ROLE_DUTIES",
    "ROUTE_MODES",
    "TICKET_FORMAT",
    "ActionMode",
    "ActionType",
    "EvidenceKind",
    "FallbackPath",
    "FlagName",
    "Role",
    "RouteMode",
]

TICKET_FORMAT: Final = "rollwatch.release-ticket/v1"

FlagName: TypeAlias = Literal[
    "ai.route.provider",
    "ai.route.mode",
    "ai.prompt.version",
    "ai.tools.enabled",
    "ai.action.mode",
    "ai.rollout.percent",
]
FLAG_NAMES: Final[tuple[FlagName, ...]] = get_args(FlagName)

RouteMode: TypeAlias = Literal["sync", "async", "batch"]
ROUTE_MODES: Final[tuple[RouteMode, ...]] = get_args(RouteMode)

ActionMode: TypeAlias = Literal["auto", "draft", "queued", "review", "disabled"]
"""Values of ``ai.action.mode``; ``disabled`` is only ever set by a rollback."""
ACTION_MODES: Final[tuple[ActionMode, ...]] = get_args(ActionMode)

ActionType: TypeAlias = Literal[
    "restore_route",
    "restore_prompt",
    "restore_route_and_prompt",
    "disable_tools",
    "set_action_mode",
    "set_route_mode",
    "reduce_rollout",
    "disable_segment",
    "freeze_rollout",
]
ACTION_TYPES: Final[tuple[ActionType, ...]] = get_args(ActionType)

EvidenceKind: TypeAlias = Literal["trace_ids", "rejected_samples", "parser_logs", "cost_sample", "reviewer_notes"]
EVIDENCE_KINDS: Final[tuple[EvidenceKind, ...]] = get_args(EvidenceKind)

Role: TypeAlias = Literal[
    "engineering_owner",
    "platform_owner",
    "product_owner",
    "risk_owner",
    "support_owner",
    "incident_commander",
    "automation",
]
ROLES: Final[tuple[Role, ...]] = get_args(Role)

ROLE_DUTIES: Final[dict[Role, str]] = {
    "engineering_owner": "flips provider, prompt, schema and tool-execution flags when a technical gate is breached",
    "platform_owner": "moves traffic across approved provider routes; watches quota, regional and batch limits",
    "product_owner": "pauses rollout expansion when review quality, complaints or task completion regress",
    "risk_owner": "requires human review or disables automation for high-impact workflows",
    "support_owner": "publishes user-facing status text and coordinates corrected outputs",
    "incident_commander": "overrides the rollout plan when several triggers fire; may reduce automation at once",
    "automation": "the rollwatch worker, acting on a breached gate without waiting for a person",
}

CUSTOMER_MESSAGES: Final[dict[str, str]] = {
    "feature_unavailable": "We paused this AI-assisted workflow while we review recent output quality.",
    "review_mode": "This request will be reviewed before it is sent or applied.",
    "regeneration_disabled": (
        "Regeneration is temporarily off for this workflow while we investigate inconsistent responses."
    ),
    "known_issue": (
        "We found an issue affecting AI-generated summaries for this task type and are restoring the prior behavior."
    ),
    "corrected_output": "The earlier AI-generated response may have been incomplete; here is the reviewed version.",
}

FallbackPath: TypeAlias = Literal[
    "previous_route",
    "stronger_reviewed_route",
    "batch",
    "human_review",
    "non_ai_workflow",
    "temporary_disablement",
]
FALLBACK_PATHS: Final[tuple[FallbackPath, ...]] = get_args(FallbackPath)

FALLBACK_NOTES: Final[dict[FallbackPath, tuple[str, str]]] = {
    "previous_route": (
        "the candidate model changes tone, length, schema adherence, or grounding",
        "the previous route is affected by the same provider incident or deprecation",
    ),
    "stronger_reviewed_route": (
        "low-confidence cases need better reasoning before a human sees them",
        "the incident is cost-driven and the stronger route would worsen the budget breach",
    ),
    "batch": (
        "offline evaluations, re-labeling, backfills, or non-urgent content generation",
        "a user is waiting for an immediate response",
    ),
    "human_review": (
        "customer-facing messages, account changes, refunds, medical, legal, financial, or other high-impact actions",
        "the queue cannot meet the promised response time and the feature should be disabled instead",
    ),
    "non_ai_workflow": (
        "the AI output cannot be trusted for the task, but the user can still complete the action manually",
        "the manual path lacks audit logging or support ownership",
    ),
    "temporary_disablement": (
        "severe incident, repeated unsafe tool calls, or vendor outage",
        "the feature is required for a contractual workflow and no manual path exists",
    ),
}
"""Per fallback path: (best use, do not use when), the seed's defaults when a ticket gives none."""
