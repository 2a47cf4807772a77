"""What a rollback does: the action records a gate maps to, and their flag overrides.

An action names an intent (``restore_route``) rather than raw flag writes so authority
can be granted per intent, explanations can say what happens, and the flag values are
derived from the ticket's routes (see :mod:`rollwatch.tickets.flags`). ``flags`` is the
escape hatch for anything the intent does not cover.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import Field

from rollwatch.tickets.catalogue import ActionMode, RouteMode
from rollwatch.tickets.fieldtypes import Name, NotNull, Percent, SegmentScope, SegmentsOnly, StrictModel

__all__ = [
    "Action",
    "AnyAction",
    "DisableSegment",
    "DisableTools",
    "FlagOverrides",
    "FreezeRollout",
    "ReduceRollout",
    "RestorePrompt",
    "RestoreRoute",
    "RestoreRouteAndPrompt",
    "SetActionMode",
    "SetRouteMode",
]


class FlagOverrides(StrictModel):
    """Explicit flag values an action sets on top of (or instead of) the ones it implies."""

    route_provider: Annotated[Name | None, NotNull] = Field(None, alias="ai.route.provider")
    route_mode: Annotated[RouteMode | None, NotNull] = Field(None, alias="ai.route.mode")
    prompt_version: Annotated[Name | None, NotNull] = Field(None, alias="ai.prompt.version")
    tools_enabled: Annotated[bool | None, NotNull] = Field(None, alias="ai.tools.enabled")
    action_mode: Annotated[ActionMode | None, NotNull] = Field(None, alias="ai.action.mode")
    rollout_percent: Annotated[Percent | None, NotNull] = Field(None, alias="ai.rollout.percent")


class _ActionBase(StrictModel):
    segments: SegmentScope = "all"
    flags: Annotated[FlagOverrides | None, NotNull] = None


class RestoreRoute(_ActionBase):
    """``ai.route.provider`` back to the control route, prompt untouched."""

    type: Literal["restore_route"]


class RestorePrompt(_ActionBase):
    """``ai.prompt.version`` back to the control prompt, route untouched."""

    type: Literal["restore_prompt"]


class RestoreRouteAndPrompt(_ActionBase):
    """The seed's default first rollback: both the route and the prompt package."""

    type: Literal["restore_route_and_prompt"]


class DisableTools(_ActionBase):
    """``ai.tools.enabled=false``: tool execution stops, read-only answers continue."""

    type: Literal["disable_tools"]


class SetActionMode(_ActionBase):
    """Reduce automation: automatic actions become drafts, queued work or human review."""

    type: Literal["set_action_mode"]
    mode: Literal["draft", "queued", "review"]


class SetRouteMode(_ActionBase):
    """Move traffic between the synchronous, async and batch paths."""

    type: Literal["set_route_mode"]
    mode: RouteMode


class ReduceRollout(_ActionBase):
    """Lower canary exposure (``ai.rollout.percent``) without leaving the candidate."""

    type: Literal["reduce_rollout"]
    percent: Percent


class DisableSegment(_ActionBase):
    """``ai.action.mode=disabled`` for some segments; never for all traffic (that is an incident call)."""

    type: Literal["disable_segment"]
    segments: SegmentsOnly = "affected"


class FreezeRollout(_ActionBase):
    """Hold the current percent: no promotion until the gate clears. Sets no flag by itself."""

    type: Literal["freeze_rollout"]


AnyAction: TypeAlias = (
    RestoreRoute
    | RestorePrompt
    | RestoreRouteAndPrompt
    | DisableTools
    | SetActionMode
    | SetRouteMode
    | ReduceRollout
    | DisableSegment
    | FreezeRollout
)
Action = Annotated[AnyAction, Field(discriminator="type")]
