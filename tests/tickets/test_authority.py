"""Who may issue which action, per the ticket's grants, including flag overrides."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from rollwatch.tickets import ACTION_TYPES, Action, AnyAction, Ticket, issuers, may_issue, roles_of
from tests.tickets.documents import example_data, replaced

TICKET = Ticket.model_validate(example_data("support-summary"))
ACTION: TypeAdapter[AnyAction] = TypeAdapter(Action)

ENGINEERING = {"restore_route", "restore_prompt", "restore_route_and_prompt", "disable_tools"}
WORKER = {
    "restore_route",
    "restore_prompt",
    "restore_route_and_prompt",
    "set_action_mode",
    "set_route_mode",
    "reduce_rollout",
    "freeze_rollout",
}


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        ("maya.chen", ENGINEERING),  # engineering owner: provider, prompt, schema, tool flags
        ("platform-oncall", {"restore_route", "set_route_mode", "reduce_rollout"}),  # moves traffic
        ("luis.ortega", {"freeze_rollout"}),  # product owner pauses expansion
        ("priya.natarajan", {"set_action_mode", "disable_segment"}),  # risk: human review, disable automation
        ("support-lead", set()),  # support publishes text, flips nothing
        ("ic-rotation", set(ACTION_TYPES)),  # incident commander may override
        ("rollwatch-worker", WORKER),  # the automated principal
        ("someone-else", set()),
    ],
)
def test_may_issue_per_role(principal: str, allowed: set[str]) -> None:
    assert {t for t in ACTION_TYPES if may_issue(TICKET, principal, t)} == allowed


def _action(**fields: Any) -> AnyAction:
    return ACTION.validate_python(fields)


def test_overrides_need_a_grant_that_sets_those_flags() -> None:
    sneaky = _action(type="freeze_rollout", flags={"ai.route.provider": "other/route"})
    assert may_issue(TICKET, "luis.ortega", "freeze_rollout")
    assert not may_issue(TICKET, "luis.ortega", sneaky)
    assert may_issue(TICKET, "ic-rotation", sneaky)
    both = _action(type="restore_route", flags={"ai.prompt.version": "support-summary-v14"})
    assert may_issue(TICKET, "maya.chen", both)  # restore_prompt is also granted
    assert not may_issue(TICKET, "platform-oncall", both)


def test_one_person_in_two_roles_holds_both_grants() -> None:
    ticket = Ticket.model_validate(replaced(example_data("support-summary"), ("owners", "product_owner"), "maya.chen"))
    assert roles_of(ticket.owners, "maya.chen") == ("engineering_owner", "product_owner")
    assert may_issue(ticket, "maya.chen", "freeze_rollout") and may_issue(ticket, "maya.chen", "disable_tools")
    assert not may_issue(ticket, "maya.chen", "disable_segment")


def test_issuers_in_role_order() -> None:
    assert issuers(TICKET, "disable_segment") == ("priya.natarajan", "ic-rotation")
    assert issuers(TICKET, "restore_route") == ("maya.chen", "platform-oncall", "ic-rotation", "rollwatch-worker")
