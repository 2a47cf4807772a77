"""Actions become concrete values of the six flags, taken from the ticket's routes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from rollwatch.tickets import (
    FLAG_NAMES,
    Action,
    AnyAction,
    apply_changes,
    candidate_flags,
    control_flags,
    customer_message,
    flag_changes,
    load_ticket,
)
from tests.tickets.documents import example_path

TICKET = load_ticket(example_path("support-summary"))
ACTION: TypeAdapter[AnyAction] = TypeAdapter(Action)


def _action(**fields: Any) -> AnyAction:
    return ACTION.validate_python(fields)


FLAG_CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"type": "restore_route"}, {"ai.route.provider": "support-summary/stable"}),
    ({"type": "restore_prompt"}, {"ai.prompt.version": "support-summary-v14"}),
    (
        {"type": "restore_route_and_prompt"},
        {"ai.route.provider": "support-summary/stable", "ai.prompt.version": "support-summary-v14"},
    ),
    ({"type": "disable_tools"}, {"ai.tools.enabled": False}),
    ({"type": "set_action_mode", "mode": "draft"}, {"ai.action.mode": "draft"}),
    ({"type": "set_action_mode", "mode": "queued"}, {"ai.action.mode": "queued"}),
    ({"type": "set_action_mode", "mode": "review"}, {"ai.action.mode": "review"}),
    ({"type": "set_route_mode", "mode": "batch"}, {"ai.route.mode": "batch"}),
    ({"type": "reduce_rollout", "percent": 1}, {"ai.rollout.percent": 1.0}),
    ({"type": "disable_segment"}, {"ai.action.mode": "disabled"}),
    ({"type": "freeze_rollout"}, {}),
]


@pytest.mark.parametrize(
    ("fields", "flags"), FLAG_CASES, ids=[" ".join(str(v) for v in fields.values()) for fields, _ in FLAG_CASES]
)
def test_each_action_sets_its_flags(fields: dict[str, Any], flags: dict[str, Any]) -> None:
    change = flag_changes(TICKET, _action(**fields))
    assert dict(change.flags) == flags
    assert change.action == fields["type"]
    assert change.hold_rollout == (fields["type"] == "freeze_rollout")


def test_scopes_carry_over() -> None:
    assert flag_changes(TICKET, _action(type="disable_segment")).segments == "affected"
    assert flag_changes(TICKET, _action(type="restore_route")).segments == "all"
    named = _action(type="set_route_mode", mode="async", segments=["low-priority", "batch-jobs"])
    assert flag_changes(TICKET, named).segments == ("low-priority", "batch-jobs")


def test_overrides_add_flags_and_win() -> None:
    action = _action(
        type="restore_route",
        flags={"ai.route.provider": "support-summary/reviewed", "ai.route.mode": "sync", "ai.rollout.percent": 0},
    )
    change = flag_changes(TICKET, action)
    assert dict(change.flags) == {
        "ai.route.provider": "support-summary/reviewed",
        "ai.route.mode": "sync",
        "ai.rollout.percent": 0.0,
    }
    assert list(change.flags) == [f for f in FLAG_NAMES if f in change.flags]  # canonical order


def test_changes_cannot_be_edited_after_the_fact() -> None:
    change = flag_changes(TICKET, _action(type="disable_tools"))
    with pytest.raises(TypeError):
        change.flags["ai.tools.enabled"] = True  # type: ignore[index]


def test_canary_and_approved_states_cover_all_six_flags() -> None:
    assert candidate_flags(TICKET) == {
        "ai.route.provider": "support-summary/candidate",
        "ai.route.mode": "sync",
        "ai.prompt.version": "support-summary-v15",
        "ai.tools.enabled": False,
        "ai.action.mode": "auto",
        "ai.rollout.percent": 5.0,
    }
    assert control_flags(TICKET) == {
        "ai.route.provider": "support-summary/stable",
        "ai.route.mode": "sync",
        "ai.prompt.version": "support-summary-v14",
        "ai.tools.enabled": False,
        "ai.action.mode": "auto",
        "ai.rollout.percent": 0.0,
    }
    agent = load_ticket(example_path("order-agent"))
    assert candidate_flags(agent)["ai.tools.enabled"] is True


def test_first_rollback_applied_to_the_canary_state() -> None:
    state = apply_changes(candidate_flags(TICKET), (flag_changes(TICKET, a) for a in TICKET.first_rollback))
    assert state == {
        "ai.route.provider": "support-summary/stable",
        "ai.route.mode": "sync",
        "ai.prompt.version": "support-summary-v14",
        "ai.tools.enabled": False,
        "ai.action.mode": "draft",
        "ai.rollout.percent": 5.0,
    }


def test_customer_messages_per_action() -> None:
    message = customer_message(TICKET, "restore_route_and_prompt")
    assert message is not None and message.key == "known_issue"
    assert message.text.startswith("We found an issue affecting AI-generated summaries")
    assert customer_message(TICKET, _action(type="disable_segment")) is not None
    assert customer_message(TICKET, "restore_route") is None  # an invisible rollback
    agent = load_ticket(example_path("order-agent"))
    tools = customer_message(agent, "disable_tools")
    assert tools is not None and tools.key == "tools_paused" and "order's status" in tools.text
    reworded = customer_message(agent, "restore_route_and_prompt")
    assert reworded is not None and reworded.text.startswith("We found an issue affecting the order assistant")
