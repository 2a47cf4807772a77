"""A consumer ten minutes behind catches up without acting on expired commands.

The flag store is started after the control topic has filled up for a while: commands
that expired ten minutes ago (a decision nobody applied in time must not land late and
flip flags under conditions that have since changed), commands issued ten minutes ago
and still valid, and fresh ones. Catching up must apply exactly the unexpired ones,
refuse and audit the expired ones as ``expired``, and a gateway started afterwards
must see the same flags. The clock is the real one: "behind" is built into the
commands' ``issued_at`` and ``expires_at``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from rollwatch.broker import EmbeddedBroker
from rollwatch.flagstore.service import FlagStore
from rollwatch.gateway import ControlSubscriber, FlagCache
from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings
from tests.control.helpers import AckReader, command, example_ticket, publish, publish_ticket, signed
from tests.reliability.conftest import control_settings_for

pytestmark = pytest.mark.integration

WF = "support-summary"


@pytest.fixture
async def settings(broker: EmbeddedBroker) -> AsyncIterator[Settings]:
    made = control_settings_for(broker.bootstrap_servers)
    await ensure_topics(made)
    await publish_ticket(made, example_ticket())
    yield made


async def test_a_flag_store_ten_minutes_behind_applies_only_unexpired_commands(settings: Settings) -> None:
    ticket = example_ticket()
    now = datetime.now(UTC)
    expired = [
        signed(
            settings,
            command(
                ticket,
                "freeze_rollout",
                {"ai.rollout.percent": 0.0},
                segment=f"expired-{i}",
                issued_at=now - timedelta(minutes=20),
                expires_in=timedelta(minutes=10),  # expired ten minutes ago
            ),
        )
        for i in range(5)
    ]
    behind_but_valid = [
        signed(
            settings,
            command(
                ticket,
                "freeze_rollout",
                {"ai.rollout.percent": 1.0},
                segment=f"behind-{i}",
                issued_at=now - timedelta(minutes=10),
                expires_in=timedelta(minutes=30),
            ),
        )
        for i in range(5)
    ]
    fresh = [
        signed(settings, command(ticket, "freeze_rollout", {"ai.rollout.percent": 2.0}, segment=f"fresh-{i}"))
        for i in range(5)
    ]
    # Interleaved, as a backlog would be: the order on the topic is not the order of expiry.
    backlog = [c for trio in zip(expired, behind_but_valid, fresh, strict=True) for c in trio]
    await publish(settings, *backlog)

    store = FlagStore(settings)
    await store.start()
    try:
        async with AckReader(settings) as acks:
            for cmd in backlog:
                ack = await acks.wait_for(cmd.command_id, "flagstore", 30)
                if cmd in expired:
                    assert ack.status == "refused"
                    assert ack.detail is not None and ack.detail.startswith("expired:"), ack.detail
                else:
                    assert ack.status == "applied", (cmd.segment, ack.detail)
        for cmd in expired:
            assert store.effective(WF, cmd.segment)["ai.rollout.percent"] != 0.0  # type: ignore[index]
            assert not store.book.seen(cmd.command_id)
        for cmd, percent in [*((c, 1.0) for c in behind_but_valid), *((c, 2.0) for c in fresh)]:
            assert store.effective(WF, cmd.segment)["ai.rollout.percent"] == percent  # type: ignore[index]
        audited = {r.command_id: r for r in store.audit}
        assert {audited[c.command_id].code for c in expired} == {"expired"}
        assert all(audited[c.command_id].outcome == "refused" for c in expired)
        assert all(audited[c.command_id].outcome == "applied" for c in (*behind_but_valid, *fresh))

        # A gateway that starts now takes the caught-up state from the flags topic.
        cache = FlagCache()
        async with ControlSubscriber(settings, cache, consumer_name="gateway-late", send_acks=False):
            for cmd in expired:
                assert cache.flags(WF, cmd.segment).get("ai.rollout.percent") != 0.0
            for cmd in fresh:
                assert cache.flags(WF, cmd.segment)["ai.rollout.percent"] == 2.0
    finally:
        await store.stop()
