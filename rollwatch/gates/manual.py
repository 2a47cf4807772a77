"""What a person's command means to the judge: holds, a new rollout, an escalation carried out.

The worker reads the control topic; commands by people (``abort``, ``pause``, ``resume``,
``undo``, a hand ``promote``, or any command that ``approves`` an escalation) change what
the judge may do on its own. Kept here as plain functions over :class:`JudgeMemory` (which
the engine checkpoints), so replay and the live worker agree and tests need no broker:

- ``abort``: the judge neither rolls back nor promotes until ``resume``; the rollout is 0;
- ``pause``: promotion is held until ``resume`` (rollbacks still happen: a pause is not a
  reason to keep hurting users);
- ``resume``: lifts a pause, an abort, a freeze and the block a rollback puts on promotion;
  the rollout is the one the command pins, and the hold before the next step starts again;
- a hand ``promote`` or an ``undo`` moves the rollout the judge counts from;
- an approval (``approves`` = the escalated decision's id) removes the escalation from the
  pending ones, and counts as the rollback it carries out.

Which commands to believe is the caller's business (:func:`admit`: signature, time, ticket
in force and authority, the consumers' own checks); the worker's own automatic commands
are not manual and change nothing here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from rollwatch.commands import MANUAL_ACTIONS, RollbackCommand
from rollwatch.control.verify import CommandChecker, Refusal, authority_refusal
from rollwatch.gates.judge import JudgeMemory
from rollwatch.tickets import Ticket
from rollwatch.tickets.authority import issuers

__all__ = ["admit", "apply_manual", "escalation_views", "is_manual"]

_PERCENT: Final = "ai.rollout.percent"
_REMEMBERED: Final = 100


def is_manual(command: RollbackCommand, ticket: Ticket) -> bool:
    """Whether ``command`` is a person's (and so may change what the judge does)."""
    return (
        command.action in MANUAL_ACTIONS
        or command.approves is not None
        or (command.action == "promote" and command.issued_by != ticket.owners.automation)
    )


def admit(
    checker: CommandChecker,
    ticket: Ticket,
    command: RollbackCommand,
    received: bytes,
    now: datetime,
    sent_at: datetime | None,
) -> Refusal | None:
    """The consumers' checks the worker can make: signature, time, ticket in force, authority.

    Effects are the flag store's to check against the flags in force, which the worker
    does not hold; a command refused there changes no flag, and the worker's hold is the
    conservative side (it only stops the worker acting on its own).
    """
    refusal = checker.check_signature(command, received) or checker.check_time(command, now, sent_at)
    if refusal is not None:
        return refusal
    if (command.ticket.id, command.ticket.revision) != (ticket.ticket, ticket.revision):
        return Refusal("stale_ticket", f"ticket {command.ticket.id} r{command.ticket.revision} is not in force")
    problem = authority_refusal(ticket, command)
    return Refusal("unauthorized", problem) if problem else None


def apply_manual(memory: JudgeMemory, command: RollbackCommand) -> str:
    """Change ``memory`` for a person's ``command``; what changed, for the log.

    A command already taken changes nothing: the worker re-reads the control topic after a
    restart, and an old ``resume`` must not reset a rollout the judge has since moved.
    """
    if command.command_id in memory.manual_ids:
        return f"{command.command_id} already taken"
    memory.manual_ids.append(command.command_id)
    del memory.manual_ids[:-_REMEMBERED]
    percent = command.flags.get(_PERCENT)
    if command.approves is not None:
        memory.escalations.pop(command.approves, None)
        memory.rolled_back = True
        memory.healthy_since_ms = None
        if command.action == "freeze_rollout":
            memory.frozen = True
        if percent is not None:
            memory.rollout_percent = float(percent)
        return f"escalation {command.approves} carried out by {command.issued_by}"
    action = command.action
    if action == "abort":
        memory.aborted = True
        memory.rolled_back = True
        memory.rollout_percent = 0.0
        memory.healthy_since_ms = None
        return f"aborted by {command.issued_by}: no automatic action until resume"
    if action == "pause":
        memory.paused = True
        return f"paused by {command.issued_by}: no promotion until resume"
    if action == "resume":
        memory.paused = memory.aborted = memory.frozen = memory.rolled_back = False
        memory.healthy_since_ms = None
        if percent is not None:
            memory.rollout_percent = float(percent)
        return f"resumed by {command.issued_by} at {memory.rollout_percent:g}%"
    if percent is not None:  # undo or a hand promote
        memory.rollout_percent = float(percent)
        memory.healthy_since_ms = None
    return f"{action} by {command.issued_by}"


def escalation_views(ticket: Ticket, memory: JudgeMemory) -> list[dict[str, Any]]:
    """Pending escalations for people: the decision, who may approve it and the exact command."""
    views = []
    for command_id, body in memory.escalations.items():
        action = str(body.get("action", ""))
        approvers = [
            name
            for name in issuers(ticket, action)  # type: ignore[arg-type]
            if name != ticket.owners.automation
        ]
        views.append(
            {
                "command_id": command_id,
                "action": action,
                "gate": body.get("reason", {}).get("gate"),
                "flags": body.get("flags", {}),
                "segment": body.get("segment"),
                "may_approve": approvers,
                "approve": f'rollwatch approve {command_id} --workflow {ticket.workflow} --reason "..."',
                "decision": body,
            }
        )
    return views
