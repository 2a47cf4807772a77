"""Keeps a gateway's :class:`FlagCache` current from Kafka, and acks what it applied.

At start it reads the releases topic (tickets: the flags' base state and the authority
commands are checked against) and the compacted flags topic (the flag store's state of
record), then tails the control topic from just after the newest command that state
contains, or from the end where the flag store has written nothing. It keeps tailing
all three: control for speed (a command lands here without waiting for the flag
store), flags for catching up on anything missed while it was down.

Everything but the cache is :class:`~rollwatch.control.consumer.ControlConsumer`'s: the
same checks in the same order as the flag store, so a command is applied by both or by
neither. Tickets must be signed by a key trusted for tickets, and the flag store's
documents by a key trusted for flags; anything else is refused, counted in ``counts`` and
logged, and changes nothing. ``follow_flag_store=False`` relies on signed commands alone.

``fetch_max_wait_ms`` bounds how long an idle fetch waits. Kafka answers a fetch as
soon as data arrives, so there it only sets the idle poll rate; the embedded broker
waits the full time, so there it is most of the decision-to-applied latency.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rollwatch.commands import RollbackCommand
from rollwatch.control.consumer import ControlConsumer
from rollwatch.control.state import FlagMap, WorkflowFlags
from rollwatch.gateway.cache import FlagCache
from rollwatch.settings import Settings
from rollwatch.signing import Keyring
from rollwatch.tickets import Ticket

__all__ = ["ControlSubscriber"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ControlSubscriber(ControlConsumer):
    """Feeds ``cache`` from the control, releases and flags topics of ``settings``."""

    kind = "gateway"

    def __init__(
        self,
        settings: Settings,
        cache: FlagCache,
        *,
        consumer_name: str = "gateway",
        keys: Keyring | None = None,
        follow_flag_store: bool = True,
        send_acks: bool = True,
        fetch_max_wait_ms: int = 20,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        super().__init__(
            settings,
            name=consumer_name,
            book=cache.book,
            tickets=cache.tickets,
            keys=keys,
            clock=clock,
            send_acks=send_acks,
            read_flags=follow_flag_store,
            tail_flags=follow_flag_store,
            start_at="end",
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self.cache = cache
        self.follow_flag_store = follow_flag_store

    def current_flags(self, workflow: str, segment: str | None) -> FlagMap:
        return self.cache.flags(workflow, segment)

    async def apply_command(self, command: RollbackCommand, partition: int | None, offset: int | None) -> None:
        self.cache.apply(command, self.clock(), partition, offset)

    def on_ticket(self, record: Any, ticket: Ticket | None) -> None:
        workflow = ticket.workflow if ticket is not None else (record.key or b"").decode("utf-8", "replace")
        if workflow:
            self.cache.notify(workflow)

    def on_flag_state(self, state: WorkflowFlags) -> None:
        if self.cache.merge(state):
            self.counts["merged"] += 1
