"""The worker reads the control topic for people's commands (issue 14): abort, pause, resume, approvals.

A person's command changes what the worker may do on its own (see
:mod:`rollwatch.gates.manual`): after an abort it neither promotes nor rolls back until a
resume, a pause holds promotion, an approval settles an escalation. The worker believes
only what the consumers would: the command must be signed by a key trusted for commands,
fresh, under the ticket in force, and within its author's authority
(:func:`rollwatch.gates.manual.admit`). Anything else is logged and counted, never acted on.

Read like the releases topic (:class:`~rollwatch.agents.tickets.TicketFeed`): every
worker tails every partition outside the consumer group and acts for the workflows it
owns; the resulting judge memory is checkpointed with the engine like any other change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rollwatch.agents.fetch import UndecodableBatch
from rollwatch.agents.records import SourceRecord
from rollwatch.agents.runtime import Runtime
from rollwatch.agents.tickets import TicketFeed
from rollwatch.commands import decode_command
from rollwatch.control.verify import CommandChecker, TicketBook
from rollwatch.errors import ContractError
from rollwatch.gates.manual import admit, escalation_views, is_manual
from rollwatch.notify import Notifier, notice_for_escalation
from rollwatch.settings import Settings
from rollwatch.trust import Keyring

__all__ = ["ControlFeed", "EscalationNotices", "ManualCommands"]

log = logging.getLogger(__name__)


class ControlFeed(TicketFeed):
    """Tails the control topic forever (the releases feed's machinery, another topic)."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str = "rollwatch-control",
        poll_ms: int = 250,
        on_undecodable: Callable[[UndecodableBatch], None] | None = None,
    ) -> None:
        super().__init__(settings, client_id=client_id, poll_ms=poll_ms, on_undecodable=on_undecodable)
        self._topic = settings.topic_control


class ManualCommands:
    """Admits people's commands from control-topic records and hands them to the owning engine."""

    def __init__(self, runtime: Runtime, keyring: Keyring, settings: Settings) -> None:
        self.runtime = runtime
        self.checker = CommandChecker.from_settings(keyring, TicketBook(), settings)
        self.counts: dict[str, int] = {}
        self.last: dict[str, str] = {}
        """Workflow -> what the last admitted manual command did (for /status)."""

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def on_record(self, record: SourceRecord, now: datetime | None = None, sent_at: datetime | None = None) -> None:
        """Act on one control-topic record if it is a person's command for a workflow we own."""
        if record.value is None:
            return
        try:
            command = decode_command(record.value)
        except ContractError:
            return  # the flag store acks and audits malformed commands; the worker only listens
        slot = self.runtime.slots.get(command.workflow)
        engine: Any = slot.engine if slot is not None else None
        ticket = getattr(engine, "ticket", None)
        if engine is None or ticket is None or not hasattr(engine, "manual") or not is_manual(command, ticket):
            return
        refusal = admit(self.checker, ticket, command, record.value, now or datetime.now(UTC), sent_at)
        if refusal is not None:
            self._count(f"refused:{refusal.code}")
            log.warning("manual command %s for %r ignored: %s", command.command_id, command.workflow, refusal)
            return
        what = engine.manual(command)
        self._count("applied")
        self.last[command.workflow] = f"{command.command_id}: {what}"
        self.runtime.touched(slot)  # type: ignore[arg-type]
        log.warning("manual command %s for %r: %s", command.command_id, command.workflow, what)


class EscalationNotices:
    """Posts each escalation once when it appears, saying who may approve and what to type.

    A restarted worker posts the escalations still pending once more: a repeated page is
    better than a lost one.
    """

    def __init__(self, runtime: Runtime, notifier: Notifier) -> None:
        self.runtime = runtime
        self.notifier = notifier
        self.seen: set[str] = set()

    def check(self) -> int:
        """Post the escalations not posted yet; how many."""
        posted = 0
        for workflow, slot in list(self.runtime.slots.items()):
            engine: Any = slot.engine
            ticket, memory = getattr(engine, "ticket", None), getattr(engine, "memory", None)
            if ticket is None or memory is None:
                continue
            for view in escalation_views(ticket, memory):
                if view["command_id"] not in self.seen:
                    self.seen.add(view["command_id"])
                    self.notifier.post(notice_for_escalation(workflow, view))
                    posted += 1
        return posted
