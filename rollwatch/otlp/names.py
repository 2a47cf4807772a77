"""Which span and resource attributes feed each field of a telemetry ``call`` (the documented defaults).

The GenAI semantic conventions say what a model call was (provider, model, tokens,
duration, errors) but not which rollwatch workflow, route, arm or segment it belongs to,
nor the outcome fields only the application knows. Those come from attributes whose names
are configurable (``ROLLWATCH_OTLP_*`` settings); the outcome attributes have fixed
``rollwatch.*`` names, listed here once so the README, the converter and the tests agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "CALL_OPERATIONS",
    "COST",
    "EVENT_ID",
    "OPERATION",
    "QUALITY_SCORE",
    "SAFETY_BLOCKED",
    "SCHEMA_VALID",
    "TASK_SUCCESS",
    "TOOL_CALLS",
    "SpanNames",
]

OPERATION: Final = "gen_ai.operation.name"
"""The attribute that makes a span a GenAI span (the Collector example filters on it too)."""
CALL_OPERATIONS: Final = ("chat", "text_completion", "generate_content")
"""``gen_ai.operation.name`` values that are model calls; embeddings, tools and agents are skipped."""

SCHEMA_VALID: Final = "rollwatch.schema_valid"
TASK_SUCCESS: Final = "rollwatch.task_success"
SAFETY_BLOCKED: Final = "rollwatch.safety_blocked"
QUALITY_SCORE: Final = "rollwatch.quality_score"
COST: Final = "rollwatch.cost_usd"
TOOL_CALLS: Final = "rollwatch.tool_calls"
EVENT_ID: Final = "rollwatch.event_id"


@dataclass(frozen=True, slots=True)
class SpanNames:
    """Attribute names looked up on the span first, then on its resource; the first one present wins."""

    workflow: tuple[str, ...] = ("rollwatch.workflow", "traceloop.workflow.name", "service.name")
    """``service.name`` last: one service, one workflow, unless the span says otherwise."""
    route: tuple[str, ...] = ("rollwatch.route",)
    """Without it, the ticket's routes are matched by ``gen_ai.request.model`` (and prompt version)."""
    arm: tuple[str, ...] = ("rollwatch.arm",)
    segment: tuple[str, ...] = ("rollwatch.segment",)
    prompt_version: tuple[str, ...] = ("rollwatch.prompt_version",)
    operations: tuple[str, ...] = CALL_OPERATIONS
