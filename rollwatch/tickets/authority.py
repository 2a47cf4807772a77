"""Who may issue which rollback action, as the ticket grants it.

Grants are per role and per action type. Flag overrides on an action are checked too:
an override may only touch flags that some action type the issuer holds would set, so
a grant of ``freeze_rollout`` cannot smuggle in a provider switch.
"""

from __future__ import annotations

from typing import Final

from rollwatch.tickets.actions import AnyAction, FlagOverrides
from rollwatch.tickets.catalogue import ROLES, ActionType, FlagName, Role
from rollwatch.tickets.model import Authority, Owners, Ticket

__all__ = [
    "FLAG_SETTERS",
    "grant_of",
    "issuers",
    "may_issue",
    "overridden_flags",
    "role_may_issue",
    "roles_of",
]

FLAG_SETTERS: Final[dict[FlagName, frozenset[ActionType]]] = {
    "ai.route.provider": frozenset({"restore_route", "restore_route_and_prompt"}),
    "ai.route.mode": frozenset({"set_route_mode"}),
    "ai.prompt.version": frozenset({"restore_prompt", "restore_route_and_prompt"}),
    "ai.tools.enabled": frozenset({"disable_tools"}),
    "ai.action.mode": frozenset({"set_action_mode", "disable_segment"}),
    "ai.rollout.percent": frozenset({"reduce_rollout"}),
}
"""For each flag, the action types whose grant also covers overriding it."""


def overridden_flags(overrides: FlagOverrides | None) -> tuple[FlagName, ...]:
    """The flag names an action's ``flags`` block sets, in wire spelling."""
    if overrides is None:
        return ()
    dumped = overrides.model_dump(by_alias=True, exclude_none=True)
    return tuple(name for name in FLAG_SETTERS if name in dumped)


def grant_of(authority: Authority, role: Role) -> tuple[ActionType, ...]:
    grant: tuple[ActionType, ...] = getattr(authority, role)
    return grant


def role_may_issue(authority: Authority, role: Role, action: AnyAction | ActionType) -> bool:
    """Whether ``role``'s grant covers the action type and every flag it overrides."""
    granted = frozenset(grant_of(authority, role))
    if isinstance(action, str):
        return action in granted
    if action.type not in granted:
        return False
    return all(FLAG_SETTERS[flag] & granted for flag in overridden_flags(action.flags))


def roles_of(owners: Owners, principal: str) -> tuple[Role, ...]:
    """Every role ``principal`` holds; one person may hold several."""
    return tuple(role for role in ROLES if getattr(owners, role) == principal)


def may_issue(ticket: Ticket, principal: str, action: AnyAction | ActionType) -> bool:
    """Whether ``principal`` (a name in ``owners``) may issue ``action`` under this ticket.

    Unknown principals may issue nothing. Passing an action type checks the type only;
    passing an action record also checks its flag overrides.
    """
    return any(role_may_issue(ticket.authority, role, action) for role in roles_of(ticket.owners, principal))


def issuers(ticket: Ticket, action: AnyAction | ActionType) -> tuple[str, ...]:
    """Principals who may issue ``action``, in role order, without repeats."""
    names: list[str] = []
    for role in ROLES:
        name: str = getattr(ticket.owners, role)
        if name not in names and role_may_issue(ticket.authority, role, action):
            names.append(name)
    return tuple(names)
