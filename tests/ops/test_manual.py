"""The pure part of a person's commands: what each verb sets, who may send it, what undo restores.

Expected verdicts come from the example ticket's authority block as written (who holds
which grant), not from the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollwatch.commands import RollbackCommand
from rollwatch.ops.errors import OpsError
from rollwatch.ops.manual import flags_before, manual_command, precheck
from rollwatch.tickets import Ticket, candidate_flags
from tests.control.helpers import command, example_ticket

NOW = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


@pytest.fixture
def ticket() -> Ticket:
    return example_ticket()


def base(ticket: Ticket) -> dict[str, Any]:
    return {str(k): v for k, v in candidate_flags(ticket).items()}


def person(ticket: Ticket, verb: str, who: str, role: str | None = None, **extra: Any) -> RollbackCommand:
    return manual_command(
        verb,  # type: ignore[arg-type]
        ticket,
        extra.pop("current", base(ticket)),
        issued_by=who,
        reason="customers report garbled summaries",
        issued_at=NOW,
        role=role,  # type: ignore[arg-type]
        **extra,
    )


def test_abort_sets_the_control_route_and_prompt_and_no_rollout(ticket: Ticket) -> None:
    cmd = person(ticket, "abort", "ic-rotation", expires_in=timedelta(minutes=30))
    assert cmd.flags == {
        "ai.route.provider": "support-summary/stable",
        "ai.prompt.version": "support-summary-v14",
        "ai.rollout.percent": 0.0,
    }
    assert cmd.action == "abort" and cmd.issued_by == "ic-rotation"
    assert (cmd.ticket.id, cmd.ticket.revision) == ("REL-2041", 3)
    assert cmd.reason.gate == "manual" and cmd.reason.detail == "customers report garbled summaries"
    assert cmd.expires_at == NOW + timedelta(minutes=30)
    assert precheck(ticket, cmd, base(ticket)) is None  # incident_commander: all


def test_a_reason_is_required(ticket: Ticket) -> None:
    with pytest.raises(OpsError, match="reason is required"):
        manual_command("abort", ticket, base(ticket), issued_by="ic-rotation", reason="  ", issued_at=NOW)


def test_a_role_without_the_grants_gets_one_line_naming_who_may(ticket: Ticket) -> None:
    # risk_owner holds set_action_mode and disable_segment: no route, prompt or rollout grant.
    problem = precheck(ticket, person(ticket, "abort", "priya.natarajan"), base(ticket))
    assert problem is not None
    assert problem.startswith("incident_commander may; risk_owner may not abort")
    # engineering_owner may restore the route and prompt but not lower the rollout.
    problem = precheck(ticket, person(ticket, "abort", "maya.chen"), base(ticket))
    assert problem is not None and "engineering_owner may not abort" in problem
    assert "ai.rollout.percent" in problem


def test_automation_may_not_act_as_a_person(ticket: Ticket) -> None:
    problem = precheck(ticket, person(ticket, "abort", "rollwatch-worker"), base(ticket))
    assert problem is not None and "only a person may abort" in problem


def test_acting_as_a_role_one_does_not_hold_is_refused(ticket: Ticket) -> None:
    problem = precheck(ticket, person(ticket, "abort", "luis.ortega", "incident_commander"), base(ticket))
    assert problem is not None and "holds only product_owner" in problem


def test_pause_and_resume_pin_the_rollout_and_need_freeze_rollout(ticket: Ticket) -> None:
    current = base(ticket) | {"ai.rollout.percent": 10.0}
    pause = person(ticket, "pause", "luis.ortega", "product_owner", current=current)
    assert pause.flags == {"ai.rollout.percent": 10.0} and pause.acting_as == "product_owner"
    assert precheck(ticket, pause, current) is None
    refused = precheck(ticket, person(ticket, "resume", "priya.natarajan", current=current), current)
    assert refused is not None and "risk_owner may not resume" in refused
    # A "pause" that moves the rollout is not a pause.
    moved = pause.model_copy(update={"flags": {"ai.rollout.percent": 0.0}})
    assert precheck(ticket, moved, current) == "off_plan: pause pins the rollout in force (10%), not 0%"


def test_promote_by_hand_takes_the_next_plan_step(ticket: Ticket) -> None:
    current = base(ticket) | {"ai.rollout.percent": 10.0}
    cmd = person(ticket, "promote", "luis.ortega", current=current)
    assert cmd.flags == {"ai.rollout.percent": 25.0}
    assert precheck(ticket, cmd, current) is None
    assert precheck(ticket, person(ticket, "promote", "maya.chen", current=current), current) is not None


def test_undo_restores_what_the_command_changed_from_the_applied_history(ticket: Ticket) -> None:
    start = base(ticket)
    first = command(ticket, "reduce_rollout", {"ai.rollout.percent": 1.0}, command_id="c1")
    seg = command(ticket, "set_action_mode", {"ai.action.mode": "draft"}, segment="eu", command_id="c2")
    abort = person(ticket, "abort", "ic-rotation")
    applied = [first, seg, abort]
    before = flags_before(start, applied, abort)
    assert before == {
        "ai.route.provider": "support-summary/candidate",
        "ai.prompt.version": "support-summary-v15",
        "ai.rollout.percent": 1.0,
    }
    assert flags_before(start, applied, seg) == {"ai.action.mode": "auto"}
    with pytest.raises(OpsError, match="not among the commands applied"):
        flags_before(start, [first], abort)
    now = start | abort.flags
    undo = person(ticket, "undo", "ic-rotation", current=now, undo=abort, undo_flags=before)
    assert undo.flags == before and undo.evidence == abort.evidence
    # 1% is not a step of the plan (5, 10, 25, 50, 100): an undo may not invent it.
    problem = precheck(ticket, undo, now)
    assert problem is not None and problem.startswith("off_plan: undo may restore the rollout only to a step")
    on_plan = person(
        ticket, "undo", "ic-rotation", current=now, undo=abort, undo_flags=before | {"ai.rollout.percent": 5.0}
    )
    assert precheck(ticket, on_plan, now) is None
