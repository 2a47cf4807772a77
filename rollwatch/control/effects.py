"""Authority over effects, not names: what a command would *do* must fit the ticket.

A grant of ``reduce_rollout`` is a grant to lower exposure, so a command that calls
itself ``reduce_rollout`` and raises the rollout from 1% to 90% is refused; likewise a
``promote`` that skips steps of the canary plan, and a route or prompt that is not the
ticket's own (another workflow's route carried by a correctly signed command). Checked
against the flags in force in the command's scope (the ticket's canary state overlaid by
the commands applied), by every consumer with the same function.

Numbers must be ones a person would write: no negative zero, at most two decimals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final, Literal, TypeAlias

from rollwatch.commands import RollbackCommand
from rollwatch.tickets import Ticket, next_rollout_percent

__all__ = [
    "DRILL_SEGMENT",
    "EffectCode",
    "allowed_prompts",
    "allowed_routes",
    "effect_refusal",
    "odd_value",
    "plan_percents",
]

DRILL_SEGMENT: Final = "rollwatch-drill"
"""The segment drills use by default; no real traffic is in it."""

_PERCENT: Final = "ai.rollout.percent"

EffectCode: TypeAlias = Literal["foreign_value", "raises_rollout", "off_plan"]


def allowed_routes(ticket: Ticket) -> frozenset[str]:
    """Routes a command may set: the ticket's control and candidate, and the fallback routes it names."""
    routes = {ticket.control.route, ticket.candidate.route}
    routes.update(f.route for f in (ticket.fallbacks or {}).values() if f.route)
    return frozenset(routes)


def allowed_prompts(ticket: Ticket) -> frozenset[str]:
    return frozenset({ticket.control.prompt_version, ticket.candidate.prompt_version})


def plan_percents(ticket: Ticket) -> frozenset[float]:
    """Every exposure the canary plan passes through, from its start to its end."""
    seen: set[float] = {0.0}
    percent = float(ticket.canary.start_percent)
    while percent not in seen:
        seen.add(percent)
        percent = next_rollout_percent(ticket, percent)
    return frozenset(seen)


def odd_value(command: RollbackCommand) -> str | None:
    """Why a flag value is not one a person would write, or None."""
    percent = command.flags.get(_PERCENT)
    if percent is None:
        return None
    if percent == 0 and math.copysign(1.0, percent) < 0:
        return f"{_PERCENT} is negative zero"
    if not math.isfinite(percent) or abs(percent * 100 - round(percent * 100)) > 1e-6:
        return f"{_PERCENT} {percent!r} has more than two decimals"
    return None


def effect_refusal(
    ticket: Ticket, command: RollbackCommand, current: Mapping[str, object] | None
) -> tuple[EffectCode, str] | None:
    """``(code, detail)`` when the command's effect is not allowed under ``ticket``; None when it is."""
    flags = command.flags
    route = flags.get("ai.route.provider")
    if route is not None and route not in allowed_routes(ticket):
        return "foreign_value", f"route {route!r} is neither the control nor the candidate of {ticket.ticket}"
    prompt = flags.get("ai.prompt.version")
    if prompt is not None and prompt not in allowed_prompts(ticket):
        return "foreign_value", f"prompt {prompt!r} is neither the control nor the candidate of {ticket.ticket}"
    percent = flags.get(_PERCENT)
    if percent is None:
        return None
    now = current.get(_PERCENT) if current is not None else None
    if not isinstance(now, int | float) or isinstance(now, bool):
        return "off_plan", f"the rollout in force for {command.workflow!r} is not known here"
    if command.action == "promote":
        expected = next_rollout_percent(ticket, float(now))
        if percent != expected:
            return "off_plan", f"promote to {percent:g}% skips the plan: from {now:g}% the next step is {expected:g}%"
        return None
    if command.action in ("pause", "resume"):
        if percent != now:
            return "off_plan", f"{command.action} pins the rollout in force ({now:g}%), not {percent:g}%"
        return None
    if command.action == "undo" and percent > now:
        # A person restores what a rollback lowered: only to a step the canary plan itself takes.
        if percent not in plan_percents(ticket):
            steps = ", ".join(f"{p:g}" for p in sorted(plan_percents(ticket)))
            return "off_plan", f"undo may restore the rollout only to a step of the plan ({steps}%), not {percent:g}%"
        return None
    if command.action == "drill_restore" and command.segment == DRILL_SEGMENT:
        return None  # restores the drill segment to what it was; no user is in it
    if percent > now:
        return "raises_rollout", f"{command.action} would raise the rollout from {now:g}% to {percent:g}%"
    return None
