"""Turn a rollback action into concrete values of the six behaviour flags.

The values come from the ticket's routes, so a ticket never repeats them: restoring the
route means ``ai.route.provider`` = the control's ``route`` string, restoring the prompt
means ``ai.prompt.version`` = the control's ``prompt_version``. Explicit ``flags`` on
the action are applied last and win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeAlias

from rollwatch.tickets.actions import (
    AnyAction,
    DisableSegment,
    DisableTools,
    FreezeRollout,
    ReduceRollout,
    RestorePrompt,
    RestoreRoute,
    RestoreRouteAndPrompt,
    SetActionMode,
    SetRouteMode,
)
from rollwatch.tickets.catalogue import FLAG_NAMES, ActionType, FlagName
from rollwatch.tickets.model import DoublingPromotion, Route, Ticket

__all__ = [
    "FlagChange",
    "FlagValue",
    "apply_changes",
    "candidate_flags",
    "control_flags",
    "flag_changes",
    "next_rollout_percent",
]

FlagValue: TypeAlias = str | bool | float


@dataclass(frozen=True, slots=True)
class FlagChange:
    """What one action writes.

    ``flags`` holds only the flags the action sets (a patch, not a full state).
    ``segments`` is where it applies: ``"all"``, ``"affected"`` (the segments the gate
    saw breached; all traffic for a gate without ``segment``/``by_segment``) or named
    segments. ``hold_rollout`` tells the promoter to stop raising ``ai.rollout.percent``.
    """

    action: ActionType
    flags: Mapping[FlagName, FlagValue]
    segments: str | tuple[str, ...]
    hold_rollout: bool


def _route_flags(route: Route) -> dict[FlagName, FlagValue]:
    return {
        "ai.route.provider": route.route,
        "ai.route.mode": route.route_mode,
        "ai.prompt.version": route.prompt_version,
        "ai.tools.enabled": route.tool_schema_version is not None,
        "ai.action.mode": route.action_mode,
    }


def control_flags(ticket: Ticket) -> dict[FlagName, FlagValue]:
    """All six flags in the approved state: the control route with no canary exposure."""
    return {**_route_flags(ticket.control), "ai.rollout.percent": 0.0}


def candidate_flags(ticket: Ticket) -> dict[FlagName, FlagValue]:
    """All six flags when the canary starts: the candidate route at ``start_percent``."""
    return {**_route_flags(ticket.candidate), "ai.rollout.percent": ticket.canary.start_percent}


def flag_changes(ticket: Ticket, action: AnyAction) -> FlagChange:
    """The flag patch ``action`` means under ``ticket``."""
    control = ticket.control
    implied: dict[FlagName, FlagValue] = {}
    match action:
        case RestoreRoute():
            implied["ai.route.provider"] = control.route
        case RestorePrompt():
            implied["ai.prompt.version"] = control.prompt_version
        case RestoreRouteAndPrompt():
            implied["ai.route.provider"] = control.route
            implied["ai.prompt.version"] = control.prompt_version
        case DisableTools():
            implied["ai.tools.enabled"] = False
        case SetActionMode(mode=mode) | SetRouteMode(mode=mode):
            implied["ai.action.mode" if action.type == "set_action_mode" else "ai.route.mode"] = mode
        case ReduceRollout(percent=percent):
            implied["ai.rollout.percent"] = percent
        case DisableSegment():
            implied["ai.action.mode"] = "disabled"
        case FreezeRollout():
            pass
    if action.flags is not None:
        overrides = action.flags.model_dump(by_alias=True, exclude_none=True)
        implied.update({name: overrides[name] for name in FLAG_NAMES if name in overrides})
    ordered = {name: implied[name] for name in FLAG_NAMES if name in implied}
    return FlagChange(
        action=action.type,
        flags=MappingProxyType(ordered),
        segments=action.segments,
        hold_rollout=action.type == "freeze_rollout",
    )


def apply_changes(state: Mapping[FlagName, FlagValue], changes: Iterable[FlagChange]) -> dict[FlagName, FlagValue]:
    """A new full state after ``changes`` in order, ignoring their segment scopes."""
    out = dict(state)
    for change in changes:
        out.update(change.flags)
    return out


def next_rollout_percent(ticket: Ticket, current: float) -> float:
    """The canary plan's next exposure after ``current`` (``current`` itself at the end of the plan)."""
    rule = ticket.canary.promotion
    if isinstance(rule, DoublingPromotion):
        return min(max(current * 2, 1.0), float(rule.max_percent))
    return next((float(p) for p in rule.percents if p > current), current)
