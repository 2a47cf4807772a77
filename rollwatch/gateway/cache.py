"""The gateway's local copy of the flags in force, read on every request.

Reads are dictionary lookups with no I/O and no lock (the cache is changed only on
the event loop that serves requests), so a rollback costs requests nothing until the
moment it lands. Listeners hear about every change, which is how the OpenFeature
provider raises configuration-changed events and how the benchmark times an update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from rollwatch.commands import RollbackCommand
from rollwatch.control.state import FlagBook, FlagMap, FlagValue, WorkflowFlags
from rollwatch.control.verify import TicketBook
from rollwatch.tickets import Ticket, candidate_flags

__all__ = ["FlagCache", "Listener"]

log = logging.getLogger(__name__)

Listener = Callable[[str], None]
"""Called with the workflow whose flags changed."""


class FlagCache:
    """Flags per workflow and segment: the ticket's state (or the defaults) overlaid by commands."""

    def __init__(self, defaults: Mapping[str, Mapping[str, FlagValue]] | None = None) -> None:
        self.book = FlagBook()
        self.tickets = TicketBook()
        self.defaults: dict[str, FlagMap] = {w: dict(f) for w, f in (defaults or {}).items()}
        self.version = 0
        self._listeners: list[Listener] = []

    def base(self, workflow: str) -> FlagMap:
        """Before any command: the ticket's canary state when a ticket is in force, else the defaults."""
        ticket = self.tickets.get(workflow)
        base = dict(self.defaults.get(workflow, {}))
        if ticket is not None:
            base.update({str(name): value for name, value in candidate_flags(ticket).items()})
        return base

    def flags(self, workflow: str, segment: str | None = None) -> FlagMap:
        state = self.book.get(workflow)
        if state is None:
            return self.base(workflow)
        return state.effective(segment, self.base(workflow))

    def ticket(self, workflow: str) -> Ticket | None:
        return self.tickets.get(workflow)

    def workflows(self) -> list[str]:
        return sorted(set(self.book.workflows) | set(self.tickets.workflows()) | set(self.defaults))

    def apply(self, command: RollbackCommand, at: datetime, partition: int | None, offset: int | None) -> None:
        self.book.apply(command, at, partition, offset)
        self._changed(command.workflow)

    def merge(self, state: WorkflowFlags) -> bool:
        """Take a flag store document when it is newer than what this gateway applied itself."""
        taken = self.book.merge(state)
        if taken:
            self._changed(state.workflow)
        return taken

    def set_ticket(self, ticket: Ticket) -> None:
        self.tickets.put(ticket)
        self._changed(ticket.workflow)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on every change; returns the function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def notify(self, workflow: str) -> None:
        """Tell listeners ``workflow`` changed (for a source that edits ``defaults`` directly)."""
        self._changed(workflow)

    def _changed(self, workflow: str) -> None:
        self.version += 1
        for listener in list(self._listeners):
            try:
                listener(workflow)
            except Exception:  # a listener's bug must not stop a rollback from landing
                log.exception("flag cache listener failed")
