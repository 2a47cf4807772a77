"""The rollback drill: "prove the rollback flag before launch" (the rollback-plan seed).

A flag that has never restored the prior route is only a configuration value. The
drill publishes a signed ``drill`` command that sets the ticket's first-rollback flags,
waits for the expected consumers (flag stores, gateways) to acknowledge it, reports
each one's time from ``issued_at`` to applying it, then publishes ``drill_restore``
with the values in force before the drill, and waits for those acks too. It restores
even when the drill failed.

By default the drill targets the segment :data:`DRILL_SEGMENT`, which no real traffic
uses: every consumer still has to receive, verify, authorize, apply and ack it, so the
control path is proven end to end without moving users. ``segment=None`` drills the
whole workflow (staging, or a deliberate production drill).

The issuer is the owner of the signing key (the keyring's principal for it), who must be
allowed to set every drilled flag (see :mod:`~rollwatch.control.verify`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer

from rollwatch.commands import ControlAck, Evidence, Reason, RollbackCommand, TicketRef, decode_ack, encode_command
from rollwatch.control.effects import DRILL_SEGMENT
from rollwatch.control.state import FlagMap
from rollwatch.control.topics import assigned, load_flag_states, read_tickets
from rollwatch.control.verify import authority_refusal
from rollwatch.errors import ContractError
from rollwatch.flagstore.errors import DrillError
from rollwatch.kafka import make_producer
from rollwatch.settings import Settings
from rollwatch.signing import SigningKey, sign_command, signing_key_from_settings
from rollwatch.tickets import Ticket, apply_changes, candidate_flags, flag_changes
from rollwatch.trust import Keyring, keyring_from_settings

__all__ = ["DRILL_SEGMENT", "ConsumerResult", "DrillReport", "PhaseReport", "drill_flags", "run_drill"]


@dataclass(frozen=True, slots=True)
class ConsumerResult:
    consumer: str
    status: str | None
    """``applied``, ``duplicate``, ``refused``, or None when no ack arrived in time."""
    apply_ms: float | None
    detail: str | None = None

    def ok(self, deadline_s: float) -> bool:
        in_time = self.apply_ms is not None and self.apply_ms <= deadline_s * 1000
        return self.status in ("applied", "duplicate") and in_time


@dataclass(frozen=True, slots=True)
class PhaseReport:
    action: str
    command_id: str
    issued_at: str
    flags: dict[str, Any]
    results: tuple[ConsumerResult, ...]
    others: tuple[ConsumerResult, ...]
    """Consumers that acked without being expected: worth knowing, never a failure."""


@dataclass(frozen=True, slots=True)
class DrillReport:
    workflow: str
    segment: str | None
    principal: str
    deadline_s: float
    drill: PhaseReport
    restore: PhaseReport

    @property
    def missed(self) -> list[tuple[str, ConsumerResult]]:
        return [
            (phase.action, result)
            for phase in (self.drill, self.restore)
            for result in phase.results
            if not result.ok(self.deadline_s)
        ]

    @property
    def ok(self) -> bool:
        return not self.missed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}

    def lines(self) -> list[str]:
        scope = f"segment {self.segment!r}" if self.segment else "the whole workflow"
        out = [f"drill of {self.workflow!r} on {scope}, as {self.principal}, deadline {self.deadline_s:g}s"]
        for phase in (self.drill, self.restore):
            flags = ", ".join(f"{k}={v}" for k, v in phase.flags.items())
            out.append(f"  {phase.action} {phase.command_id}: {flags}")
            for result in (*phase.results, *phase.others):
                when = f"{result.apply_ms:9.1f} ms" if result.apply_ms is not None else "        -   "
                verdict = "ok" if result.ok(self.deadline_s) else ("MISSED" if result.status is None else "FAILED")
                if result in phase.others:
                    verdict = "(not expected)"
                status = result.status or f"no ack within {self.deadline_s:g}s"
                detail = f" - {result.detail}" if result.detail else ""
                out.append(f"    {result.consumer:<24} {status:<10} {when}  {verdict}{detail}")
        out.append("result: ok" if self.ok else f"result: FAILED ({len(self.missed)} consumer(s) missed the deadline)")
        return out


def drill_flags(ticket: Ticket) -> FlagMap:
    """The flags the ticket's first rollback sets: what the drill proves can be flipped."""
    changes = [flag_changes(ticket, action) for action in ticket.first_rollback]
    return {str(name): value for name, value in apply_changes({}, changes).items()}


async def _ticket(settings: Settings, workflow: str, keyring: Keyring) -> Ticket:
    book = await read_tickets(settings, keyring)
    ticket = book.get(workflow)
    if ticket is None:
        raise DrillError(f"no ticket in force for workflow {workflow!r} on {settings.topic_releases}")
    return ticket


def _command(
    ticket: Ticket,
    action: str,
    command_id: str,
    flags: Mapping[str, Any],
    segment: str | None,
    principal: str,
    issued: datetime,
    ttl: timedelta,
) -> RollbackCommand:
    return RollbackCommand.model_validate(
        {
            "command_id": command_id,
            "issued_at": issued,
            "workflow": ticket.workflow,
            "segment": segment,
            "action": action,
            "flags": dict(flags),
            "reason": Reason(
                gate="drill",
                metric="rollback-drill",
                observed=None,
                threshold=None,
                window="drill",
                samples={},
                detail="rollback drill: prove the rollback flags before launch",
            ),
            "evidence": Evidence(trace_ids=[], event_ids=[]),
            "issued_by": principal,
            "ticket": TicketRef(id=ticket.ticket, revision=ticket.revision),
            "expires_at": issued + ttl,
        }
    )


def _principal(ticket: Ticket, flags: Mapping[str, Any], segment: str | None, key: SigningKey) -> str:
    """The drill's issuer: the key's owner, who must be allowed to set every drilled flag."""
    name = key.principal or "?"
    probe = _command(ticket, "drill", "probe", flags, segment, name, datetime.now(UTC), timedelta(minutes=1))
    problem = authority_refusal(ticket, probe)
    if problem is not None:
        raise DrillError(f"{name} (owner of key {key.key_id!r}) may not drill these flags: {problem}")
    return name


async def _phase(
    consumer: AIOKafkaConsumer,
    settings: Settings,
    key: SigningKey,
    command: RollbackCommand,
    expected: Sequence[str],
    deadline_s: float,
) -> PhaseReport:
    signed = sign_command(command, key=key)
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_control, encode_command(signed), key=command.workflow.encode())
    finally:
        await producer.stop()
    acks: dict[str, ControlAck] = {}
    stop_at = time.monotonic() + deadline_s
    while time.monotonic() < stop_at and not all(name in acks for name in expected):
        batches = await consumer.getmany(timeout_ms=50)
        for records in batches.values():
            for record in records:
                try:
                    ack = decode_ack(record.value or b"")
                except ContractError:
                    continue
                if ack.command_id == command.command_id:
                    acks.setdefault(ack.consumer, ack)

    def result(name: str) -> ConsumerResult:
        ack = acks.get(name)
        if ack is None:
            return ConsumerResult(name, None, None)
        took = (ack.applied_at - command.issued_at).total_seconds() * 1000
        return ConsumerResult(name, ack.status, round(took, 3), ack.detail)

    return PhaseReport(
        action=command.action,
        command_id=command.command_id,
        issued_at=command.issued_at.isoformat(),
        flags=dict(command.flags),
        results=tuple(result(name) for name in expected),
        others=tuple(result(name) for name in sorted(acks) if name not in expected),
    )


async def run_drill(
    settings: Settings,
    workflow: str,
    *,
    consumers: Sequence[str] = ("flagstore",),
    segment: str | None = DRILL_SEGMENT,
    deadline_s: float | None = None,
    principal: str | None = None,
    flags: Mapping[str, Any] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DrillReport:
    """Drill, restore, and report; raises :class:`DrillError` when the drill cannot even start."""
    if not consumers:
        raise DrillError("name at least one consumer whose ack the drill waits for")
    keyring = keyring_from_settings(settings)
    key = signing_key_from_settings(settings, keyring if settings.keyring_file else None)
    if key is None:
        raise DrillError("no signing key: set ROLLWATCH_SIGNING_KEY (the consumers refuse unsigned commands)")
    if principal is not None and principal != key.principal:
        raise DrillError(f"key {key.key_id!r} belongs to {key.principal!r}: sign with {principal}'s own key")
    deadline = deadline_s if deadline_s is not None else settings.command_ack_deadline_s
    ticket = await _ticket(settings, workflow, keyring)
    drilled = dict(flags) if flags else drill_flags(ticket)
    if not drilled:
        raise DrillError(f"ticket {ticket.ticket}'s first rollback sets no flags; pass the flags to drill")
    issuer = _principal(ticket, drilled, segment, key)
    states = {s.workflow: s for s in await load_flag_states(settings, keyring)}
    base = {str(k): v for k, v in candidate_flags(ticket).items()}
    state = states.get(workflow)
    before = state.effective(segment, base) if state else base
    restore = {name: before[name] for name in drilled if name in before}
    ttl = timedelta(seconds=max(60.0, 3 * deadline))
    drill_id = f"drill-{uuid.uuid4().hex[:16]}"

    async with assigned(settings, settings.topic_acks, at="end") as (consumer, _):  # "the end" fixed first
        issued = clock()
        drill_cmd = _command(ticket, "drill", drill_id, drilled, segment, issuer, issued, ttl)
        drill = await _phase(consumer, settings, key, drill_cmd, consumers, deadline)
        restore_cmd = _command(ticket, "drill_restore", f"{drill_id}-restore", restore, segment, issuer, clock(), ttl)
        restored = await _phase(consumer, settings, key, restore_cmd, consumers, deadline)
    return DrillReport(workflow, segment, issuer, deadline, drill, restored)
