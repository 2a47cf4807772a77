"""A person's commands (``rollwatch abort|pause|resume|promote|undo``): what each sets, and who may.

Every manual command is an ordinary signed :class:`~rollwatch.commands.RollbackCommand`, so
the flag store and gateways check it exactly as they check the worker's (signature, time,
ticket in force, authority, effect; :mod:`rollwatch.control.verify`). This module is the
pure part: from the ticket in force and the flags in force to the command, and the CLI's
own authority check, which runs the consumers' function so the two cannot disagree.

What each verb sets (documented choice):

- ``abort``: the control route and prompt and ``ai.rollout.percent`` 0: the canary is gone;
- ``pause`` / ``resume``: ``ai.rollout.percent`` pinned at the percent in force; the flags
  do not move, but the worker holds promotion from a pause until a resume;
- ``promote``: the canary plan's next step (a person may expand only along the plan);
- ``undo COMMAND_ID``: each flag that command set, back to its value before it (replayed
  from the ticket's own state and the commands the flag store applied, in order).

The reason a person gives travels in ``reason.detail``; ``reason.gate`` is ``manual``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal, TypeAlias

from rollwatch.commands import Evidence, Reason, RollbackCommand, TicketRef
from rollwatch.control.effects import effect_refusal, odd_value
from rollwatch.control.verify import authority_refusal
from rollwatch.ops.errors import OpsError
from rollwatch.tickets import Ticket, next_rollout_percent, roles_of
from rollwatch.tickets.authority import grant_of
from rollwatch.tickets.catalogue import ROLES, Role

__all__ = [
    "MANUAL_GATE",
    "Verb",
    "approval_command",
    "approval_id",
    "authority_message",
    "flags_before",
    "manual_command",
    "precheck",
]

Verb: TypeAlias = Literal["abort", "pause", "resume", "promote", "undo", "approve"]
MANUAL_GATE: Final = "manual"
_PERCENT: Final = "ai.rollout.percent"


def _require(reason: str) -> None:
    if not reason.strip():
        raise OpsError("a reason is required (--reason): it goes into the audit trail and every notification")


def flags_before(
    base: Mapping[str, Any],
    applied: Sequence[RollbackCommand],
    target: RollbackCommand,
) -> dict[str, Any]:
    """The values, before ``target`` was applied, of the flags ``target`` set, in its scope.

    ``applied`` is every command the flag store applied for the workflow, in order; only
    those before ``target`` count. A workflow-wide command clears the flags it sets from
    segment layers, exactly as :meth:`~rollwatch.control.state.WorkflowFlags.apply` does.
    """
    layer: dict[str, Any] = {}
    segments: dict[str, dict[str, Any]] = {}
    for command in applied:
        if command.command_id == target.command_id:
            break
        if command.segment is None:
            layer.update(command.flags)
            for seg in segments.values():
                for name in command.flags:
                    seg.pop(name, None)
        else:
            segments.setdefault(command.segment, {}).update(command.flags)
    else:
        raise OpsError(f"command {target.command_id} is not among the commands applied to {target.workflow!r}")
    view = dict(base) | layer
    if target.segment is not None:
        view |= segments.get(target.segment, {})
    missing = [name for name in target.flags if name not in view]
    if missing:
        raise OpsError(f"the value of {', '.join(missing)} before {target.command_id} is not known")
    return {name: view[name] for name in target.flags}


def manual_command(
    verb: Verb,
    ticket: Ticket,
    current: Mapping[str, Any],
    *,
    issued_by: str,
    reason: str,
    issued_at: datetime,
    role: Role | None = None,
    expires_in: timedelta | None = None,
    undo: RollbackCommand | None = None,
    undo_flags: Mapping[str, Any] | None = None,
) -> RollbackCommand:
    """The unsigned command for ``verb`` under ``ticket``; ``current`` is the flags in force.

    ``undo`` names the command to undo and ``undo_flags`` its :func:`flags_before`.
    """
    _require(reason)
    segment: str | None = None
    if verb == "abort":
        flags: dict[str, Any] = {
            "ai.route.provider": ticket.control.route,
            "ai.prompt.version": ticket.control.prompt_version,
            _PERCENT: 0.0,
        }
    elif verb in ("pause", "resume", "promote"):
        now = current.get(_PERCENT)
        if not isinstance(now, int | float) or isinstance(now, bool):
            raise OpsError(f"the rollout in force for {ticket.workflow!r} is not known")
        flags = {_PERCENT: next_rollout_percent(ticket, float(now)) if verb == "promote" else float(now)}
    else:
        if undo is None or undo_flags is None:
            raise OpsError("undo needs the command to undo")
        flags, segment = dict(undo_flags), undo.segment
    target = f" {undo.command_id}" if undo is not None else ""
    return RollbackCommand.model_validate(
        {
            "command_id": f"manual-{verb}-{uuid.uuid4().hex[:12]}",
            "issued_at": issued_at,
            "workflow": ticket.workflow,
            "segment": segment,
            "action": verb,
            "flags": flags,
            "reason": Reason(
                gate=MANUAL_GATE,
                metric=f"{verb}{target}",
                observed=None,
                threshold=None,
                window="now",
                samples={},
                detail=reason.strip(),
            ),
            "evidence": undo.evidence if undo is not None else Evidence(trace_ids=[], event_ids=[]),
            "issued_by": issued_by,
            "ticket": TicketRef(id=ticket.ticket, revision=ticket.revision),
            "expires_at": issued_at + expires_in if expires_in is not None else None,
            "acting_as": role,
        }
    )


def approval_id(escalated: str) -> str:
    """One id per escalation, whoever approves it and however often: consumers apply it once."""
    return f"{escalated}.approved"


def approval_command(
    ticket: Ticket,
    decision: Mapping[str, Any],
    *,
    issued_by: str,
    reason: str,
    issued_at: datetime,
    role: Role | None = None,
    expires_in: timedelta | None = None,
) -> RollbackCommand:
    """The escalated ``decision`` (the worker's command body, with its evidence) carried out by a person.

    Same action, flags, segment, gate numbers and evidence; the person's name, role and
    reason; ``approves`` names the escalation.
    """
    _require(reason)
    escalated = str(decision["command_id"])
    original = dict(decision.get("reason") or {})
    detail = f"approved by {issued_by}: {reason.strip()}"
    if original.get("detail"):
        detail = f"{detail}; {original['detail']}"
    body = {
        key: decision[key]
        for key in ("workflow", "segment", "action", "flags", "evidence", "customer_message")
        if key in decision
    }
    return RollbackCommand.model_validate(
        body
        | {
            "command_id": approval_id(escalated),
            "issued_at": issued_at,
            "reason": original | {"detail": detail[:4096]},
            "issued_by": issued_by,
            "ticket": TicketRef(id=ticket.ticket, revision=ticket.revision),
            "expires_at": issued_at + expires_in if expires_in is not None else None,
            "acting_as": role,
            "approves": escalated,
        }
    )


def authority_message(ticket: Ticket, command: RollbackCommand) -> str:
    """One line naming the roles that may issue ``command`` and the one(s) that may not.

    E.g. ``incident_commander may; risk_owner may not abort (...)``: the same function
    the consumers run decides, tried for each role of the ticket in turn.
    """
    may = [
        role
        for role in ROLES
        if grant_of(ticket.authority, role) or role == "automation"
        if authority_refusal(
            ticket,
            command.model_copy(update={"issued_by": getattr(ticket.owners, role), "acting_as": role}),
        )
        is None
    ]
    mine = command.acting_as or "/".join(roles_of(ticket.owners, command.issued_by)) or command.issued_by
    who = f"{', '.join(may)} may" if may else "no role of the ticket may"
    return f"{who}; {mine} may not {command.action}"


def precheck(ticket: Ticket, command: RollbackCommand, current: Mapping[str, Any]) -> str | None:
    """What every consumer would refuse ``command`` for, said for a person; None when it would pass."""
    problem = authority_refusal(ticket, command)
    if problem is not None:
        return f"{authority_message(ticket, command)} ({problem})"
    odd = odd_value(command)
    if odd is not None:
        return odd
    effect = effect_refusal(ticket, command, current)
    return f"{effect[0]}: {effect[1]}" if effect is not None else None
