"""Whether a consumer may act on a command or a ticket: signature, time, ticket, authority, effect.

Every consumer (flag store, gateway) runs the same checks in the same order, so a
command is applied everywhere or nowhere:

1. the signature is by a key the keyring trusts to sign commands, and ``issued_by`` is
   that key's owner (:mod:`rollwatch.signing`); never a name the command claims;
2. it has not expired, was not issued in the future or longer ago than
   ``command_max_age_s``, does not give itself a longer life than that, and its
   ``issued_at`` is within ``command_max_skew_s`` of when it was sent (the record's
   timestamp), so a consumer catching up still applies what was fresh when sent;
3. its ticket (id, revision) is the ticket *in force* for the workflow on the releases
   topic. An older revision is refused too: a revision may have revoked the authority
   the command relies on, and the worker re-issues under the new one;
4. the author may issue the action under that ticket (its roles and their grants);
5. what it does fits the ticket (:mod:`rollwatch.control.effects`): values a person
   would write, the ticket's own routes and prompts, a rollout only lowered except by a
   ``promote`` that takes the plan's next step.

Authority for command actions that are not ticket action types (documented choice):

- ``promote``: the ticket's ``automation`` principal, or a person whose grant includes
  ``freeze_rollout`` (who governs expansion may also expand by hand), and only
  ``ai.rollout.percent`` (the effect check still allows only the plan's next step);
- ``rollback``, ``drill`` and ``drill_restore``: any owner whose grant is not empty;
- for every action, each flag the command sets must be settable under the author's
  grants (:data:`rollwatch.tickets.authority.FLAG_SETTERS`; a ``freeze_rollout`` may pin
  ``ai.rollout.percent``), so a narrow grant cannot smuggle in a provider switch and a
  drill can only flip flags its author could flip for real.

Manual actions (``abort``, ``pause``, ``resume``, ``undo``; :mod:`rollwatch.ops.manual`) are
a person's: the ``automation`` role never counts for them. ``pause`` and ``resume`` need a
grant of ``freeze_rollout`` (the product owner "pauses expansion") and set only
``ai.rollout.percent``; ``abort`` and ``undo`` need, like everything else, a grant covering
each flag they set. A command naming ``acting_as`` counts only that role's grant, and the
author must hold the role.

Tickets themselves arrive signed (:mod:`rollwatch.trust.releases`); the :class:`TicketBook`
keeps the last good one in force when a record is refused, and remembers why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeAlias

from rollwatch.commands import MANUAL_ACTIONS, RollbackCommand
from rollwatch.control.effects import effect_refusal, odd_value
from rollwatch.settings import Settings
from rollwatch.signing import Keyring, SignatureError, verify_command
from rollwatch.tickets import ACTION_TYPES, Ticket, roles_of
from rollwatch.tickets.authority import FLAG_SETTERS, grant_of
from rollwatch.trust import SignatureProblem
from rollwatch.trust.releases import ReleaseRefused, load_release

__all__ = [
    "CommandChecker",
    "Refusal",
    "RefusalCode",
    "TicketBook",
    "TicketRefusal",
    "authority_refusal",
]

RefusalCode: TypeAlias = (
    Literal[
        "malformed",
        "expired",
        "clock_skew",
        "unknown_ticket",
        "stale_ticket",
        "unauthorized",
        "bad_value",
        "foreign_value",
        "raises_rollout",
        "off_plan",
    ]
    | SignatureProblem
)
"""Why a command was refused: a signature problem (:mod:`rollwatch.trust`) or one of policy."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command was not applied: a stable ``code`` for metrics, ``detail`` for people."""

    code: RefusalCode
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass(frozen=True, slots=True)
class TicketRefusal:
    """A releases-topic record that was refused; the previous ticket stays in force."""

    workflow: str
    code: str
    detail: str
    source: str


class TicketBook:
    """The release ticket in force per workflow, fed from the compacted releases topic."""

    def __init__(self) -> None:
        self._tickets: dict[str, Ticket] = {}
        self.refusals: dict[str, TicketRefusal] = {}
        """The last refused record per workflow (cleared when a good one arrives)."""

    def get(self, workflow: str) -> Ticket | None:
        return self._tickets.get(workflow)

    def put(self, ticket: Ticket) -> None:
        self._tickets[ticket.workflow] = ticket

    def workflows(self) -> list[str]:
        return sorted(self._tickets)

    def load_record(self, key: bytes | None, value: bytes | None, source: str, keyring: Keyring) -> Ticket | None:
        """Apply one releases-topic record if it is signed by a key trusted for tickets.

        Raises :class:`ReleaseRefused` (refused: unsigned, forged, a tombstone, an older
        revision) or ``TicketError`` (signed but does not load); either way the previous
        ticket stays in force, because guessing authority is worse than stale authority.
        """
        workflow = (key or b"").decode("utf-8", "replace")
        try:
            release, ticket = load_release(key, value, keyring, source, self._tickets.get(workflow))
        except Exception as exc:
            code = exc.code if isinstance(exc, ReleaseRefused) else "malformed"
            self.refusals[workflow] = TicketRefusal(workflow, code, str(exc), source)
            raise
        self.refusals.pop(release.workflow, None)
        if ticket is None:
            self._tickets.pop(release.workflow, None)
            return None
        self.put(ticket)
        return ticket


def authority_refusal(ticket: Ticket, command: RollbackCommand) -> str | None:
    """Why ``command.issued_by`` may not issue ``command`` under ``ticket``; None when it may."""
    principal = command.issued_by
    roles = roles_of(ticket.owners, principal)
    where = f"ticket {ticket.ticket} r{ticket.revision}"
    if not roles:
        return f"{principal!r} holds no role in {where}"
    if command.acting_as is not None:
        if command.acting_as not in roles:
            return f"{principal!r} acts as {command.acting_as} but holds only {', '.join(roles)} in {where}"
        roles = (command.acting_as,)
    action = command.action
    if action in MANUAL_ACTIONS:
        people = tuple(role for role in roles if role != "automation")
        if not people:
            return f"only a person may {action}; {principal!r} acts as automation under {where}"
        roles = people
    granted: set[str] = set()
    for role in roles:
        granted.update(grant_of(ticket.authority, role))
    if action in ("pause", "resume"):
        if "freeze_rollout" not in granted:
            return f"{principal!r} ({', '.join(roles)}) may not {action} under {where} (needs freeze_rollout)"
        extra = sorted(flag for flag in command.flags if flag != "ai.rollout.percent")
        if extra:
            return f"a {action} may only set ai.rollout.percent, not {', '.join(extra)}"
        return None
    if action == "promote":
        if "automation" not in roles and "freeze_rollout" not in granted:
            return (
                f"only the automation principal {ticket.owners.automation!r} or a role granted freeze_rollout "
                f"may promote under {where}"
            )
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
    """The checks of the module docstring, over a keyring and the tickets in force."""

    def __init__(
        self,
        keys: Keyring,
        tickets: TicketBook,
        *,
        legacy: bool = True,
        max_skew_s: float = 300.0,
        max_age_s: float = 3900.0,
    ) -> None:
        self.keys = keys
        self.tickets = tickets
        self.legacy = legacy
        self.max_skew = timedelta(seconds=max_skew_s)
        self.max_age = timedelta(seconds=max_age_s)

    @classmethod
    def from_settings(cls, keys: Keyring, tickets: TicketBook, settings: Settings) -> CommandChecker:
        return cls(
            keys,
            tickets,
            legacy=settings.legacy_command_signatures,
            max_skew_s=settings.command_max_skew_s,
            max_age_s=settings.command_max_age_s,
        )

    def check_signature(self, command: RollbackCommand, received: bytes | None = None) -> Refusal | None:
        """Signature and author; ``received`` is the message as it arrived."""
        try:
            verify_command(command, self.keys, received, legacy=self.legacy)
        except SignatureError as exc:
            return Refusal(exc.problem, str(exc))
        return None

    def check_time(self, command: RollbackCommand, now: datetime, sent_at: datetime | None) -> Refusal | None:
        issued, expires = command.issued_at, command.expires_at
        if expires is not None and expires <= now:
            return Refusal("expired", f"expired at {expires.isoformat()}")
        if issued > now + self.max_skew:
            return Refusal("clock_skew", f"issued_at {issued.isoformat()} is in the future of {now.isoformat()}")
        if issued < now - self.max_age:
            return Refusal("clock_skew", f"issued_at {issued.isoformat()} is older than {self.max_age}")
        if expires is not None and expires - issued > self.max_age:
            return Refusal("clock_skew", f"a command may live {self.max_age} at most, this one {expires - issued}")
        if sent_at is not None and abs(issued - sent_at) > self.max_skew:
            return Refusal(
                "clock_skew", f"issued_at {issued.isoformat()} is {abs(issued - sent_at)} from when it was sent"
            )
        return None

    def check_policy(
        self,
        command: RollbackCommand,
        now: datetime,
        current: Mapping[str, object] | None = None,
        sent_at: datetime | None = None,
    ) -> Refusal | None:
        """Time, ticket, authority and effect: the checks after the signature (and the duplicate check).

        ``current`` is the flags in force in the command's scope; ``sent_at`` the record's timestamp.
        """
        late = self.check_time(command, now, sent_at)
        if late is not None:
            return late
        ticket = self.tickets.get(command.workflow)
        ref = command.ticket
        if ticket is None or ticket.ticket != ref.id:
            in_force = f"; in force: {ticket.ticket} r{ticket.revision}" if ticket else ""
            return Refusal("unknown_ticket", f"ticket {ref.id} is not known for {command.workflow!r}{in_force}")
        if ticket.revision != ref.revision:
            return Refusal("stale_ticket", f"ticket {ref.id} r{ref.revision} is not in force (r{ticket.revision} is)")
        problem = authority_refusal(ticket, command)
        if problem:
            return Refusal("unauthorized", problem)
        odd = odd_value(command)
        if odd:
            return Refusal("bad_value", odd)
        effect = effect_refusal(ticket, command, current)
        if effect is not None:
            code, detail = effect
            return Refusal(code, detail)
        return None

    def check(
        self,
        command: RollbackCommand,
        now: datetime,
        received: bytes | None = None,
        current: Mapping[str, object] | None = None,
        sent_at: datetime | None = None,
    ) -> Refusal | None:
        return self.check_signature(command, received) or self.check_policy(command, now, current, sent_at)
