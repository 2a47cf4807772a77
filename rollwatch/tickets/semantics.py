"""Rules that relate parts of a ticket to each other, beyond what the schema can say.

They run on the raw document, validating each part on its own, so a type error in one
gate does not hide a missing grant for another: the author sees every problem at once.
Each finding is a (path, message) pair; the loader turns paths into lines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, Final, TypeVar

from pydantic import TypeAdapter, ValidationError

from rollwatch.gates.kinds import KINDS
from rollwatch.gates.kinds.drift import WORSE_DRIFT
from rollwatch.gates.kinds.spec import MAX_COUNT_WINDOW, Issue
from rollwatch.gates.kinds.threshold import WORSE_DIRECTION
from rollwatch.tickets.actions import Action, AnyAction
from rollwatch.tickets.authority import role_may_issue
from rollwatch.tickets.catalogue import CUSTOMER_MESSAGES, ROLES, ActionType
from rollwatch.tickets.gates import BOTH_ACTION_AND_LADDER, NEITHER_ACTION_NOR_LADDER, AnyGate, Gate
from rollwatch.tickets.model import (
    Authority,
    Canary,
    CustomerMessages,
    DoublingPromotion,
    Estimates,
    Owners,
    RollbackObjective,
    Route,
    StepPromotion,
)
from rollwatch.tickets.yamlsource import Loc

__all__ = ["MAX_RESTORE_MS", "WORSE_DIRECTION", "WORSE_DRIFT", "Issue", "semantic_issues"]

T = TypeVar("T")

MAX_RESTORE_MS: Final = 15 * 60_000
"""The seed's rollback objective: previous route and prompt back in under 15 minutes."""

_ROUTE_IDENTITY: Final = frozenset({"route", "notes", "approved_on"})

_GATE: Final[TypeAdapter[AnyGate]] = TypeAdapter(Gate)
_ACTION: Final[TypeAdapter[AnyAction]] = TypeAdapter(Action)


def _valid(adapter: TypeAdapter[T], value: Any) -> T | None:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return None


def _part(data: dict[str, Any], key: str, adapter: TypeAdapter[T]) -> T | None:
    return _valid(adapter, data[key]) if key in data else None


def semantic_issues(data: Any) -> list[Issue]:
    """Every cross-part problem in a decoded ticket document (structure is checked elsewhere)."""
    if not isinstance(data, dict):
        return []
    control = _part(data, "control", TypeAdapter(Route))
    candidate = _part(data, "candidate", TypeAdapter(Route))
    canary = _part(data, "canary", TypeAdapter(Canary))
    authority = _part(data, "authority", TypeAdapter(Authority))
    owners = _part(data, "owners", TypeAdapter(Owners))
    estimates = _part(data, "estimates", TypeAdapter(Estimates))
    messages = _part(data, "customer_messages", TypeAdapter(CustomerMessages))
    objective = _part(data, "rollback_objective", TypeAdapter(RollbackObjective))
    tools = any(r is not None and r.tool_schema_version is not None for r in (control, candidate))

    issues: list[Issue] = []
    issues += _routes(control, candidate, _raw_route_name(data, "control"), _raw_route_name(data, "candidate"))
    if canary is not None:
        issues += _canary(canary)
    issues += _gates(data.get("gates"), estimates)
    for loc, action in _actions(data):
        issues += _action(loc, action, authority, tools)
    if owners is not None:
        issues += _owners(owners)
    if messages is not None:
        issues += _messages(messages)
    if objective is not None:
        issues += _objective(objective)
    return issues


def _raw_route_name(data: dict[str, Any], arm: str) -> str | None:
    """The route string even when the rest of that route is invalid; it alone decides identity."""
    section = data.get(arm)
    name = section.get("route") if isinstance(section, dict) else None
    return name if isinstance(name, str) else None


def _routes(
    control: Route | None, candidate: Route | None, control_name: str | None, candidate_name: str | None
) -> list[Issue]:
    issues: list[Issue] = []
    for name, route in (("control", control), ("candidate", candidate)):
        if route is None:
            continue
        dates: list[tuple[Loc, str | None]] = [((name, "approved_on"), route.approved_on)]
        if route.retrieval is not None:
            dates.append(((name, "retrieval", "corpus_cutoff"), route.retrieval.corpus_cutoff))
        for loc, text in dates:
            if text is not None and not _is_date(text):
                issues.append((loc, f"{text!r} is not a calendar date"))
    if control_name is not None and control_name == candidate_name:
        message = f"must differ from control.route ({control_name!r}): telemetry tells arms apart by route"
        issues.append((("candidate", "route"), message))
    elif control is not None and candidate is not None and _behaviour(control) == _behaviour(candidate):
        issues.append((("candidate",), "is the control route under another name; a canary needs a change to test"))
    return issues


def _behaviour(route: Route) -> dict[str, Any]:
    return route.model_dump(exclude=set(_ROUTE_IDENTITY))


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _canary(canary: Canary) -> list[Issue]:
    issues: list[Issue] = []
    promotion = canary.promotion
    base: Loc = ("canary", "promotion")
    if isinstance(promotion, StepPromotion):
        if promotion.percents[0] != canary.start_percent:
            issues.append(((*base, "percents", 0), f"must equal canary.start_percent ({canary.start_percent:g})"))
        for i in range(1, len(promotion.percents)):
            if promotion.percents[i] <= promotion.percents[i - 1]:
                issues.append(
                    ((*base, "percents", i), f"must be above the step before it ({promotion.percents[i - 1]:g})")
                )
    elif isinstance(promotion, DoublingPromotion):
        if promotion.rollback_below_ratio >= promotion.promote_at_ratio:
            issues.append(
                ((*base, "rollback_below_ratio"), f"must be below promote_at_ratio ({promotion.promote_at_ratio:g})")
            )
        if promotion.max_percent < canary.start_percent:
            issues.append(((*base, "max_percent"), f"must be at least canary.start_percent ({canary.start_percent:g})"))
    return issues


def _gates(raw: Any, estimates: Estimates | None) -> list[Issue]:
    if not isinstance(raw, list):
        return []
    issues: list[Issue] = []
    names: dict[str, int] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            continue
        loc: Loc = ("gates", i)
        if "action" not in item and "ladder" not in item:
            issues.append((loc, NEITHER_ACTION_NOR_LADDER))
        elif "action" in item and "ladder" in item:
            issues.append((loc, BOTH_ACTION_AND_LADDER))
        ladder = item.get("ladder")
        if isinstance(ladder, list):
            for j, step in enumerate(ladder[:-1]):
                if isinstance(step, dict) and "wait" not in step:
                    issues.append(((*loc, "ladder", j), "needs a wait: how long this step settles before the next"))
        name = item.get("name")
        if isinstance(name, str):
            if name in names:
                issues.append(((*loc, "name"), f"{name!r} is already the name of gates[{names[name]}]"))
            names.setdefault(name, i)
        gate = _valid(_GATE, item)
        if gate is not None:
            issues += [((*loc, *sub), msg) for sub, msg in _gate(gate, estimates)]
    return issues


def _gate(gate: AnyGate, estimates: Estimates | None) -> Iterator[Issue]:
    """Rules for every gate, then its kind's own (:attr:`rollwatch.gates.kinds.spec.GateKind.check`)."""
    if gate.segment is not None and gate.by_segment:
        yield ("by_segment",), "cannot be true when segment is set; choose one segment or all of them"
    spec = KINDS[gate.kind]
    yield from spec.check(gate, estimates)
    for need in spec.windows(gate):
        if need.size > MAX_COUNT_WINDOW:
            yield (need.field,), f"cannot exceed {MAX_COUNT_WINDOW:,}: a route keeps no longer count window"
        elif need.bounds_min_samples and gate.min_samples > need.size:
            yield ("min_samples",), f"cannot exceed {need.field} ({need.size}): the window never holds that many"


def _actions(data: dict[str, Any]) -> Iterator[tuple[Loc, AnyAction]]:
    """Every action in the ticket with its path, each validated on its own."""
    sites: list[tuple[Loc, Any]] = []
    gates = data.get("gates")
    if isinstance(gates, list):
        for i, gate in enumerate(gates):
            if not isinstance(gate, dict):
                continue
            if "action" in gate:
                sites.append((("gates", i, "action"), gate["action"]))
            ladder = gate.get("ladder")
            if isinstance(ladder, list):
                sites += [
                    (("gates", i, "ladder", j, "action"), step["action"])
                    for j, step in enumerate(ladder)
                    if isinstance(step, dict) and "action" in step
                ]
    first = data.get("first_rollback")
    if isinstance(first, list):
        sites += [(("first_rollback", k), raw) for k, raw in enumerate(first)]
    for loc, raw in sites:
        action = _valid(_ACTION, raw)
        if action is not None:
            yield loc, action


def _action(loc: Loc, action: AnyAction, authority: Authority | None, tools: bool) -> Iterator[Issue]:
    if authority is not None and not any(role_may_issue(authority, role, action) for role in ROLES):
        yield (*loc, "type"), f"no role in authority may issue {action.type}{_with_overrides(action)}"
    if action.type == "disable_tools" and not tools:
        yield (*loc, "type"), "neither route declares a tool_schema_version, so there are no tools to disable"
    flags = action.flags
    if flags is None:
        return
    floc: Loc = (*loc, "flags")
    if flags.tools_enabled is True:
        yield (*floc, "ai.tools.enabled"), "a rollback may not turn tool execution on"
    if flags.action_mode == "auto":
        yield (*floc, "ai.action.mode"), "a rollback may not switch actions to auto"
    expected = _IMPLIED.get(action.type)
    if expected is not None:
        flag, value = expected
        if value is None:  # the action's own parameter decides the value
            value = getattr(action, "mode", None) if flag != "ai.rollout.percent" else getattr(action, "percent", None)
        given = flags.model_dump(by_alias=True).get(flag)
        if given is not None and given != value:
            yield (*floc, flag), f"contradicts the {action.type} action, which sets it to {value!r}"


_IMPLIED: Final[dict[ActionType, tuple[str, object]]] = {
    "disable_tools": ("ai.tools.enabled", False),
    "disable_segment": ("ai.action.mode", "disabled"),
    "set_action_mode": ("ai.action.mode", None),
    "set_route_mode": ("ai.route.mode", None),
    "reduce_rollout": ("ai.rollout.percent", None),
}
"""The flag each fixed-value action writes; an override of it with another value is a contradiction."""


def _with_overrides(action: AnyAction) -> str:
    return " with these flag overrides" if action.flags is not None else ""


def _owners(owners: Owners) -> Iterator[Issue]:
    people = {getattr(owners, role) for role in ROLES if role != "automation"}
    if owners.automation in people:
        yield ("owners", "automation"), "must be a service principal, not one of the people named for other roles"


def _messages(messages: CustomerMessages) -> Iterator[Issue]:
    known = set(CUSTOMER_MESSAGES) | set(messages.texts or {})
    for kind, key in messages.on_action.items():
        if key not in known:
            yield (
                ("customer_messages", "on_action", kind),
                f"{key!r} is neither a built-in message ({', '.join(CUSTOMER_MESSAGES)}) "
                "nor in customer_messages.texts",
            )


def _objective(objective: RollbackObjective) -> Iterator[Issue]:
    if objective.restore_within > MAX_RESTORE_MS:
        yield (
            ("rollback_objective", "restore_within"),
            "must be 15m or less: prove the previous route and prompt come back in under 15 minutes",
        )
    faster = objective.reduce_automation_within
    if faster is not None and faster > objective.restore_within:
        yield (
            ("rollback_objective", "reduce_automation_within"),
            "must not be slower than restore_within: reducing automation is the faster switch",
        )
