"""A second gateway is a small subclass of :class:`ControlConsumer` (the one in its docstring).

It is run on the session broker beside the flag store: it reads the ticket, applies a
signed command and acks it, refuses what the flag store refuses (a command altered after
signing), treats a replay as a duplicate, and a gateway of it started later rebuilds from
the flag store's documents and resumes after the last command they contain.
"""

from __future__ import annotations

import pytest

from rollwatch.commands import RollbackCommand
from rollwatch.control.consumer import ControlConsumer
from rollwatch.control.state import FlagBook, FlagMap
from rollwatch.control.verify import TicketBook
from rollwatch.flagstore.service import FlagStore
from rollwatch.settings import Settings
from rollwatch.tickets import Ticket
from tests.control.helpers import AckReader, command, publish, signed, wait_until

pytestmark = pytest.mark.integration

WF = "support-summary"


class BookGateway(ControlConsumer):
    def __init__(self, settings: Settings, name: str = "gateway-book") -> None:
        super().__init__(settings, name=name, book=FlagBook(), tickets=TicketBook())

    def current_flags(self, workflow: str, segment: str | None) -> FlagMap:
        state = self.book.get(workflow)
        return state.effective(segment) if state is not None else {}

    async def apply_command(self, command: RollbackCommand, partition: int | None, offset: int | None) -> None:
        self.book.apply(command, self.clock(), partition, offset)


async def test_a_small_subclass_is_a_gateway_that_agrees_with_the_flag_store(
    store: FlagStore, topics: Settings, ticket: Ticket
) -> None:
    good = signed(topics, command(ticket, "restore_route", {"ai.route.provider": ticket.control.route}))
    forged = signed(topics, command(ticket, "restore_route", {"ai.route.provider": ticket.control.route}))
    forged = forged.model_copy(update={"flags": {"ai.route.provider": "evil/route"}})
    async with BookGateway(topics) as gateway, AckReader(topics) as acks:
        assert gateway.tickets.get(WF) is not None  # the releases topic was read at start
        await publish(topics, good, forged, good)
        for consumer in ("flagstore", "gateway-book"):
            first, replay = await acks.collect(good.command_id, consumer, 2)
            assert (first.status, replay.status) == ("applied", "duplicate"), consumer
            refused = await acks.wait_for(forged.command_id, consumer)
            assert refused.status == "refused" and (refused.detail or "").startswith("bad_signature"), consumer
        state = gateway.book.get(WF)
        assert state is not None and state.flags == {"ai.route.provider": ticket.control.route}
        assert gateway.counts["applied"] == 1 and gateway.counts["duplicate"] == 1
        assert gateway.counts["refused"] == 1 and gateway.last_refusal is not None
        assert gateway.last_refusal.code == "bad_signature"

    # Started later, it rebuilds from the flag store's signed document and resumes after it.
    await wait_until(lambda: store.book.seen(good.command_id), what="the flag store to apply it")
    async with BookGateway(topics, "gateway-book-late") as late:
        assert late.counts["merged"] == 1 and late.book.seen(good.command_id)
        nxt = signed(topics, command(ticket, "set_route_mode", {"ai.route.mode": "async"}))
        async with AckReader(topics) as acks:
            await publish(topics, nxt)
            assert (await acks.wait_for(nxt.command_id, "gateway-book-late")).status == "applied"
        # It resumed after the good command (the document's position): the forged copy and the
        # replay behind it are judged again (refused, duplicate), the good one is not re-applied.
        assert (late.counts["applied"], late.counts["duplicate"], late.counts["refused"]) == (1, 1, 1)
