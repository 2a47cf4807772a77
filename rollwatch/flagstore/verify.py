"""Whether a consumer may act on a command: signature, expiry, ticket and authority.

Every consumer (flag store, gateway) runs the same checks in the same order, so a
command is applied everywhere or nowhere:

1. the signature is by a trusted key (:mod:`rollwatch.signing`);
2. it has not expired (``expires_at`` in the past: a replay of an old decision);
3. its ticket (id, revision) is the ticket *in force* for the workflow on the releases
   topic. An older revision is refused too: a revision may have revoked the authority
   the command relies on, and the worker re-issues under the new one;
4. ``issued_by`` may issue the action under that ticket.

Authority for command actions that are not ticket action types (documented choice):

- ``promote``: only the ticket's ``automation`` principal, and only ``ai.rollout.percent``
  (promotion follows the ticket's canary plan, which every accepted ticket has);
- ``rollback``, ``drill`` and ``drill_restore``: any owner whose grant is not empty;
- for every action, each flag the command sets must be settable under the issuer's
  grants (:data:`rollwatch.tickets.authority.FLAG_SETTERS`; a ``freeze_rollout`` may pin
  ``ai.rollout.percent``), so a narrow grant cannot smuggle in a provider switch and a
  drill can only flip flags its issuer could flip for real.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

from rollwatch.commands import RollbackCommand
from rollwatch.signing import Keyring, SignatureError, verify_command
from rollwatch.tickets import ACTION_TYPES, Ticket, load_ticket_bytes, roles_of
from rollwatch.tickets.authority import FLAG_SETTERS, grant_of

__all__ = [
    "CommandChecker",
    "Refusal",
    "RefusalCode",
    "TicketBook",
    "authority_refusal",
]

RefusalCode: TypeAlias = Literal[
    "malformed",
    "unsigned",
    "unknown_key",
    "wrong_alg",
    "bad_signature",
    "expired",
    "unknown_ticket",
    "stale_ticket",
    "unauthorized",
]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command was not applied: a stable ``code`` for metrics, ``detail`` for people."""

    code: RefusalCode
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class TicketBook:
    """The release ticket in force per workflow, fed from the compacted releases topic."""

    def __init__(self) -> None:
        self._tickets: dict[str, Ticket] = {}

    def get(self, workflow: str) -> Ticket | None:
        return self._tickets.get(workflow)

    def put(self, ticket: Ticket) -> None:
        self._tickets[ticket.workflow] = ticket

    def workflows(self) -> list[str]:
        return sorted(self._tickets)

    def load_record(self, key: bytes | None, value: bytes | None, source: str) -> Ticket | None:
        """Apply one releases-topic record; a tombstone retires the key's ticket.

        Raises :class:`TicketError` for a ticket that does not load: the caller logs it and
        keeps the previous ticket, because guessing authority is worse than stale authority.
        """
        if value is None:
            if key is not None:
                self._tickets.pop(key.decode("utf-8", "replace"), None)
            return None
        ticket = load_ticket_bytes(value, source)
        self.put(ticket)
        return ticket


def authority_refusal(ticket: Ticket, command: RollbackCommand) -> str | None:
    """Why ``command.issued_by`` may not issue ``command`` under ``ticket``; None when it may."""
    principal = command.issued_by
    roles = roles_of(ticket.owners, principal)
    where = f"ticket {ticket.ticket} r{ticket.revision}"
    if not roles:
        return f"{principal!r} holds no role in {where}"
    granted: set[str] = set()
    for role in roles:
        granted.update(grant_of(ticket.authority, role))
    action = command.action
    if action == "promote":
        if "automation" not in roles:
            return f"only the automation principal {ticket.owners.automation!r} may promote under {where}"
        extra = sorted(flag for flag in command.flags if flag != "ai.rollout.percent")
        if extra:
            return f"a promotion may only set ai.rollout.percent, not {', '.join(extra)}"
        return None
    if action in ACTION_TYPES:
        if action not in granted:
            return f"{principal!r} ({', '.join(roles)}) may not {action} under {where}"
    elif not granted:
        return f"{principal!r} ({', '.join(roles)}) may issue no rollback action under {where}, so not {action}"
    for flag in command.flags:
        setters: set[str] = set(FLAG_SETTERS[flag])  # type: ignore[index]
        if flag == "ai.rollout.percent" and action == "freeze_rollout":
            setters.add("freeze_rollout")
        if not setters & granted:
            needs = ", ".join(sorted(setters))
            return f"{principal!r} may not set {flag} under {where} (needs a grant of {needs})"
    return None


class CommandChecker:
    """The four checks of the module docstring, over a keyring and the tickets in force."""

    def __init__(self, keys: Keyring, tickets: TicketBook) -> None:
        self.keys = keys
        self.tickets = tickets

    def check_signature(self, command: RollbackCommand) -> Refusal | None:
        try:
            verify_command(command, self.keys)
        except SignatureError as exc:
            return Refusal(exc.problem, str(exc))
        return None

    def check_policy(self, command: RollbackCommand, now: datetime) -> Refusal | None:
        """Expiry, ticket and authority: the checks after the signature (and the duplicate check)."""
        if command.expires_at is not None and command.expires_at <= now:
            return Refusal("expired", f"expired at {command.expires_at.isoformat()}")
        ticket = self.tickets.get(command.workflow)
        ref = command.ticket
        if ticket is None or ticket.ticket != ref.id:
            in_force = f"; in force: {ticket.ticket} r{ticket.revision}" if ticket else ""
            return Refusal("unknown_ticket", f"ticket {ref.id} is not known for {command.workflow!r}{in_force}")
        if ticket.revision != ref.revision:
            return Refusal("stale_ticket", f"ticket {ref.id} r{ref.revision} is not in force (r{ticket.revision} is)")
        problem = authority_refusal(ticket, command)
        return Refusal("unauthorized", problem) if problem else None

    def check(self, command: RollbackCommand, now: datetime) -> Refusal | None:
        return self.check_signature(command) or self.check_policy(command, now)
