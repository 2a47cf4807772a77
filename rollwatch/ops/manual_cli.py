"""``rollwatch abort|pause|resume|promote|undo``: a person's signed command onto the control topic.

The CLI reads what the consumers read (the ticket in force on the releases topic and the
flags documents on the flags topic, both verified against the keyring; the control topic
for ``undo``), builds the command (:mod:`rollwatch.ops.manual`), refuses early with one
clear line when the consumers would refuse it, signs it with the person's own key
(``ROLLWATCH_SIGNING_KEY``; ``issued_by`` is the key's owner) and publishes it. The flag
store and gateways still check everything themselves: the CLI's check is a courtesy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from rollwatch.commands import RollbackCommand, decode_command, encode_command
from rollwatch.control.topics import load_flag_states, read_tickets, read_topic
from rollwatch.errors import ContractError
from rollwatch.kafka import make_producer
from rollwatch.ops.errors import OpsError
from rollwatch.ops.manual import Verb, approval_command, flags_before, manual_command, precheck
from rollwatch.ops.status import fetch_status
from rollwatch.settings import Settings, load_settings
from rollwatch.signing import sign_command
from rollwatch.tickets import Ticket, candidate_flags, parse_duration
from rollwatch.tickets.catalogue import ROLES, Role
from rollwatch.trust import Keyring, keyring_from_settings, signing_key_from_settings

__all__ = ["Situation", "issue", "pending_escalation", "read_situation", "register"]


@dataclass(slots=True)
class Situation:
    """What a person acts on: the ticket in force, the flags in force, the commands applied."""

    ticket: Ticket
    current: dict[str, Any]
    applied: list[RollbackCommand] = field(default_factory=list)


async def read_situation(settings: Settings, keyring: Keyring, workflow: str, commands: bool) -> Situation:
    """Read the releases and flags topics (and the control topic when ``commands``), verified."""
    book = await read_tickets(settings, keyring)
    ticket = book.get(workflow)
    if ticket is None:
        refused = book.refusals.get(workflow)
        why = f" (the last record was refused: {refused.code}: {refused.detail})" if refused else ""
        raise OpsError(f"no release ticket in force for {workflow!r} on {settings.topic_releases}{why}")
    states = {s.workflow: s for s in await load_flag_states(settings, keyring)}
    state = states.get(workflow)
    current = {str(k): v for k, v in candidate_flags(ticket).items()}
    current |= state.flags if state is not None else {}
    applied: list[RollbackCommand] = []
    if not commands or state is None:
        return Situation(ticket, current, applied)
    seen: dict[str, RollbackCommand] = {}

    def take_command(record: Any) -> None:
        try:
            command = decode_command(record.value)
        except ContractError:
            return
        if command.workflow == workflow:
            seen.setdefault(command.command_id, command)

    await read_topic(settings, settings.topic_control, take_command)
    # Only what the flag store applied, in the order it applied it (its signed document says).
    applied = [seen[i] for i in state.applied if i in seen]
    return Situation(ticket, current, applied)


async def issue(
    settings: Settings,
    verb: Verb,
    workflow: str,
    reason: str,
    *,
    role: Role | None = None,
    expires: str | None = None,
    target: str | None = None,
    now: datetime | None = None,
    escalation: dict[str, Any] | None = None,
) -> RollbackCommand:
    """Build, check, sign and publish one manual command; raises :class:`OpsError` when refused.

    ``verb`` ``approve`` carries out ``escalation`` (the worker's pending decision, see
    :func:`pending_escalation`).
    """
    keyring = keyring_from_settings(settings)
    key = signing_key_from_settings(settings, keyring)
    if key is None or key.principal is None:
        raise OpsError("no signing key: set ROLLWATCH_SIGNING_KEY and ROLLWATCH_SIGNING_KEY_ID to your own key")
    situation = await read_situation(settings, keyring, workflow, commands=verb == "undo")
    undo: RollbackCommand | None = None
    undo_flags: dict[str, Any] | None = None
    if verb == "undo":
        undo = next((c for c in situation.applied if c.command_id == target), None)
        if undo is None:
            raise OpsError(f"command {target!r} was not applied to {workflow!r}; nothing to undo")
        undo_flags = flags_before(
            {str(k): v for k, v in candidate_flags(situation.ticket).items()}, situation.applied, undo
        )
    issued_at = now or datetime.now(UTC)
    expires_in = timedelta(milliseconds=parse_duration(expires)) if expires else None
    if verb == "approve":
        if escalation is None:
            raise OpsError("approve needs the escalated decision")
        command = approval_command(
            situation.ticket,
            escalation,
            issued_by=key.principal,
            reason=reason,
            issued_at=issued_at,
            role=role,
            expires_in=expires_in,
        )
    else:
        command = manual_command(
            verb,
            situation.ticket,
            situation.current,
            issued_by=key.principal,
            reason=reason,
            issued_at=issued_at,
            role=role,
            expires_in=expires_in,
            undo=undo,
            undo_flags=undo_flags,
        )
    problem = precheck(situation.ticket, command, situation.current)
    if problem is not None:
        raise OpsError(f"refused before sending: {problem}")
    signed = sign_command(command, key=key)
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_control, encode_command(signed), key=workflow.encode())
    finally:
        await producer.stop()
    return signed


def pending_escalation(urls: list[str], workflow: str, command_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The escalated decision ``command_id`` as the worker owning ``workflow`` keeps it (its /status)."""
    seen: list[str] = []
    for url in urls:
        try:
            status = fetch_status(url, timeout)
        except (OSError, ValueError) as exc:
            seen.append(f"{url}: {exc}")
            continue
        engine = (status.get("workflows") or {}).get(workflow, {}).get("engine") or {}
        for pending in engine.get("escalations") or []:
            if pending.get("command_id") == command_id:
                decision: dict[str, Any] = pending["decision"]
                return decision
        waiting = ", ".join(p.get("command_id", "?") for p in engine.get("escalations") or []) or "none"
        seen.append(f"{url}: pending for {workflow}: {waiting}")
    raise OpsError(f"no pending escalation {command_id} for {workflow!r} ({'; '.join(seen) or 'no worker'})")


WorkflowOption = Annotated[str, typer.Option("--workflow", "-w", help="The workflow (as its ticket names it).")]
ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why (required; audited and notified).")]
AsOption = Annotated[
    str | None, typer.Option("--as", help=f"The ticket role to act in: {', '.join(ROLES)} (default: all yours).")
]
ExpiresOption = Annotated[str | None, typer.Option("--expires", help="Refuse the command after this long (30m).")]
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the signed command as JSON.")]


def _run(
    verb: Verb,
    workflow: str,
    reason: str,
    role: str | None,
    expires: str | None,
    config: Path | None,
    as_json: bool,
    target: str | None = None,
    escalation: dict[str, Any] | None = None,
) -> None:
    if role is not None and role not in ROLES:
        raise typer.BadParameter(f"{role!r}: expected one of {', '.join(ROLES)}", param_hint="--as")
    if not reason.strip():
        raise typer.BadParameter(
            "a reason is required: it goes into the audit trail and every notice", param_hint="--reason"
        )
    if expires is not None:
        try:
            parse_duration(expires)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--expires") from None
    settings = load_settings(config)
    command = asyncio.run(issue(settings, verb, workflow, reason, role=role, expires=expires, target=target))
    if as_json:
        typer.echo(orjson.dumps(command.model_dump(mode="json")).decode())
        return
    flags = ", ".join(f"{k}={v}" for k, v in command.flags.items())
    typer.echo(
        f"{verb} {workflow}: sent {command.command_id} as {command.issued_by}"
        f"{f' ({role})' if role else ''} under {command.ticket.id} r{command.ticket.revision}: {flags}"
    )
    typer.echo(f"acks: rollwatch tail acks | grep {command.command_id}")


_PLAIN_VERBS: dict[Verb, str] = {
    "abort": "Stop the canary: control route and prompt, rollout 0; the worker holds until `resume`.",
    "pause": "Hold the rollout where it is: no promotion until `resume`.",
    "resume": "Lift a pause, an abort or a freeze: the worker decides again.",
    "promote": "Take the canary plan's next step now.",
}


def _plain(verb: Verb) -> Callable[..., None]:
    """The typer command of a verb that takes no argument but the common options."""

    def command(
        workflow: WorkflowOption,
        reason: ReasonOption,
        role: AsOption = None,
        expires: ExpiresOption = None,
        config: ConfigOption = None,
        as_json: JsonOption = False,
    ) -> None:
        _run(verb, workflow, reason, role, expires, config, as_json)

    return command


def register(app: typer.Typer) -> None:
    """Mount the verbs on the ``rollwatch`` app."""

    for verb, summary in _PLAIN_VERBS.items():
        app.command(verb, help=summary)(_plain(verb))

    @app.command("approve")
    def approve(
        command_id: Annotated[str, typer.Argument(help="The escalated decision (rollwatch status lists them).")],
        workflow: WorkflowOption,
        reason: ReasonOption,
        role: AsOption = None,
        expires: ExpiresOption = None,
        worker: Annotated[
            list[str] | None,
            typer.Option("--worker", "-u", envvar="ROLLWATCH_STATUS_URLS", help="A worker's base URL (repeatable)."),
        ] = None,
        config: ConfigOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Carry out an escalated decision the automation may not take, with its original evidence."""
        settings = load_settings(config)
        urls = worker or [f"http://127.0.0.1:{settings.web_port}"]
        escalation = pending_escalation(urls, workflow, command_id)
        _run("approve", workflow, reason, role, expires, config, as_json, escalation=escalation)

    @app.command("undo")
    def undo(
        command_id: Annotated[str, typer.Argument(help="The applied command to undo.")],
        workflow: WorkflowOption,
        reason: ReasonOption,
        role: AsOption = None,
        expires: ExpiresOption = None,
        config: ConfigOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Restore the flags in force before COMMAND_ID."""
        _run("undo", workflow, reason, role, expires, config, as_json, target=command_id)
