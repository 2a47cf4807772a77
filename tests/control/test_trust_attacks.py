"""Every attack on the control path of issue 12, replayed against a live flag store, Redis, HTTP and a gateway.

Each test plays the attacker with the bytes a hostile producer would publish, then
asserts what the issue asks for: refused, audited, acked where there is a command id,
and the flags unchanged in the flag store's HTTP answer, in Redis and in the gateway's
cache. The expected verdicts come from the attack itself (who signed, what the ticket
grants), never from the code under test.

Row 3 of ``tests/reliability/README.md`` lists these tests with the attack each replays.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from redis.asyncio import Redis

from rollwatch.agents.metrics import Metrics
from rollwatch.agents.records import SourceRecord
from rollwatch.agents.runtime import Runtime, Topics
from rollwatch.broker import free_port
from rollwatch.commands import RollbackCommand, encode_command
from rollwatch.control.state import WorkflowFlags
from rollwatch.flagstore.http import serve
from rollwatch.flagstore.redis_sink import RedisFlags
from rollwatch.flagstore.service import FlagStore
from rollwatch.gates.engine import EngineFactoryImpl
from rollwatch.gateway import ControlSubscriber, FlagCache
from rollwatch.kafka import make_producer
from rollwatch.settings import Settings
from rollwatch.tickets import Ticket, ticket_to_json
from rollwatch.trust import keyring_from_settings, parse_signing_key, sign_document, signing_key_from_settings
from rollwatch.trust.releases import ticket_record
from tests.control.helpers import PEOPLE, AckReader, by, command, example_ticket, publish, signed, wait_until

pytestmark = pytest.mark.integration

WF = "support-summary"


@dataclass
class Plane:
    """The consumers under attack and the three places flags are read from."""

    settings: Settings
    store: FlagStore
    gateway: ControlSubscriber
    cache: FlagCache
    redis: RedisFlags
    http: aiohttp.ClientSession
    base: str

    async def flags(self) -> tuple[int, Any, Any, Any]:
        """(HTTP status, HTTP flags, Redis hash, gateway flags) for the workflow."""
        async with self.http.get(f"{self.base}/flags/{WF}") as response:
            body = await response.json()
        return response.status, body.get("flags"), await self.redis.read(WF), self.cache.flags(WF)

    def audited(self, code: str, subject: str = "command") -> list[Any]:
        return [r for r in self.store.audit if r.code == code and r.subject == subject]


@pytest.fixture
async def plane(topics: Settings, redis_client: Redis) -> AsyncIterator[Plane]:
    redis = RedisFlags(redis_client, topics.redis_prefix)
    store = FlagStore(topics, redis=redis)
    cache = FlagCache()
    gateway = ControlSubscriber(topics, cache, consumer_name="gateway-sec")
    await store.start()
    await gateway.start()
    port = free_port()
    runner: web.AppRunner = await serve(store, "127.0.0.1", port)
    session = aiohttp.ClientSession()
    try:
        yield Plane(topics, store, gateway, cache, redis, session, f"http://127.0.0.1:{port}")
    finally:
        await session.close()
        await runner.cleanup()
        await gateway.stop()
        await store.stop()


async def produce(settings: Settings, topic: str, value: bytes | None, key: str = WF) -> None:
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


def forged_ticket(ticket: Ticket) -> Ticket:
    """A new revision of the real ticket that moves everyone to the attacker's route."""
    candidate = ticket.candidate.model_copy(update={"route": "attacker/route"})
    canary = ticket.canary.model_copy(update={"start_percent": 100.0})
    return ticket.model_copy(update={"revision": ticket.revision + 1, "candidate": candidate, "canary": canary})


async def settled(plane: Plane) -> tuple[int, Any, Any, Any]:
    """The flags once the store and the gateway agree (Redis is written right after the store applies)."""
    await wait_until(
        lambda: plane.store.effective(WF) == plane.cache.flags(WF), what="store and gateway agree", timeout=10
    )
    await asyncio.sleep(0.2)
    return await plane.flags()


async def test_forged_tickets_and_a_tombstone_change_nothing_and_the_real_rollback_still_applies(
    plane: Plane, ticket: Ticket
) -> None:
    before = await settled(plane)
    assert before[0] == 200 and before[1]["ai.route.provider"] == ticket.candidate.route
    forged = forged_ticket(ticket)
    raw = ticket_to_json(forged)
    mallory = parse_signing_key("mallory-key", PEOPLE["mallory"][0], "mallory")  # trusted for commands only
    guessed = parse_signing_key(plane.settings.signing_key_id, "a guessed secret", "rollwatch-worker")
    attacks = {
        "unsigned": raw,  # what `ticket publish` used to write
        "key_not_allowed": ticket_record(raw, forged, mallory),
        "bad_signature": ticket_record(raw, forged, guessed),
        "unsigned ": None,  # a tombstone: used to delete the workflow's flags
    }
    seen: Counter[str] = Counter()
    for n, (code, value) in enumerate(attacks.items(), start=1):
        seen[code.strip()] += 1
        await produce(plane.settings, plane.settings.topic_releases, value)
        stripped = code.strip()
        want = seen[stripped]
        await wait_until(lambda c=stripped, k=want: len(plane.audited(c, "ticket")) >= k, what=f"{code}")  # type: ignore[misc]
        await wait_until(lambda n=n: plane.gateway.counts["tickets_refused"] >= n, what=f"gateway refused {code}")  # type: ignore[misc]
        assert await plane.flags() == before, code
        assert plane.store.tickets.get(WF) == ticket and plane.cache.ticket(WF) == ticket
        assert plane.store.tickets.refusals[WF].code == code.strip()
    assert plane.store.refused_documents.labels("ticket", "unsigned")._value.get() == 2

    # The worker refuses the same records and keeps the real ticket for its judgement.
    runtime = Runtime(
        EngineFactoryImpl(),
        topics=Topics("tel", "ctl", "dlq", plane.settings.topic_releases, "changelog"),
        partitions=4,
        metrics=Metrics(),
        worker="sec",
        keyring=keyring_from_settings(plane.settings),
    )
    runtime.on_assigned(range(4))
    runtime.on_recovered([])
    real = ticket_record(ticket_to_json(ticket), ticket, signing_key_from_settings(plane.settings))  # type: ignore[arg-type]
    assert runtime.on_ticket(SourceRecord(plane.settings.topic_releases, 0, 0, WF.encode(), real)) == []
    for offset, value in enumerate(attacks.values(), start=1):
        [letter] = runtime.on_ticket(SourceRecord(plane.settings.topic_releases, 0, offset, WF.encode(), value))
        assert letter.topic == "dlq" and "ticket refused" in orjson.loads(letter.value)["reason"]
    assert runtime.tickets[WF] == ticket_to_json(ticket)

    # The real revision's rollback is neither stale nor for an unknown ticket.
    rollback = signed(plane.settings, command(ticket, "restore_route", {"ai.route.provider": ticket.control.route}))
    async with AckReader(plane.settings) as acks:
        await publish(plane.settings, rollback)
        assert (await acks.wait_for(rollback.command_id, "flagstore")).status == "applied"
        assert (await acks.wait_for(rollback.command_id, "gateway-sec")).status == "applied"
    after = await settled(plane)
    assert after[1]["ai.route.provider"] == ticket.control.route


async def test_forged_flag_documents_reach_neither_a_live_gateway_nor_a_restarted_flag_store(
    plane: Plane, ticket: Ticket
) -> None:
    applied = signed(plane.settings, command(ticket, "reduce_rollout", {"ai.rollout.percent": 1.0}))
    async with AckReader(plane.settings) as acks:
        await publish(plane.settings, applied)
        assert (await acks.wait_for(applied.command_id, "flagstore")).status == "applied"
    before = await settled(plane)
    forged = WorkflowFlags(
        WF, {"ai.route.provider": "attacker2/route", "ai.rollout.percent": 100.0}, partition=0, offset=10_000
    )
    mallory = parse_signing_key("mallory-key", PEOPLE["mallory"][0], "mallory")
    documents = {"unsigned": forged.to_json(), "key_not_allowed": forged.to_json(mallory), "unsigned ": None}
    for n, (code, value) in enumerate(documents.items(), start=1):
        await produce(plane.settings, plane.settings.topic_flags, value)
        await wait_until(lambda n=n: plane.gateway.counts["flags_refused"] >= n, what=f"gateway refused {code}")  # type: ignore[misc]
    assert await plane.flags() == before

    # A flag store started now rebuilds from the verified documents only, and still knows what it applied.
    await plane.store.stop()
    restarted = FlagStore(plane.settings, name="flagstore-2", redis=plane.redis)
    await restarted.start()
    try:
        assert restarted.effective(WF) == plane.cache.flags(WF) == before[3]
        assert {r.code for r in restarted.audit if r.subject == "flags"} == {"unsigned", "key_not_allowed"}
        async with AckReader(plane.settings) as acks:
            await publish(plane.settings, applied)  # the same message again
            assert (await acks.wait_for(applied.command_id, "flagstore-2")).status == "duplicate"
        assert (await plane.redis.read(WF)) == before[2]
    finally:
        await restarted.stop()


def _claiming(settings: Settings, cmd: RollbackCommand, issued_by: str) -> bytes:
    """``cmd`` signed with the worker's trusted key, its body claiming another author."""
    key = parse_signing_key(settings.signing_key_id, settings.signing_key, "rollwatch-worker")  # type: ignore[arg-type]
    body = cmd.model_dump(mode="json") | {"issued_by": issued_by, "signature": None}
    return orjson.dumps(sign_document(body, key))


async def test_commands_that_lie_about_their_author_effect_or_time_are_refused_everywhere(
    plane: Plane, ticket: Ticket
) -> None:
    lowered = by("platform-oncall", command(ticket, "reduce_rollout", {"ai.rollout.percent": 1.0}))
    async with AckReader(plane.settings) as acks:
        await publish(plane.settings, lowered)
        assert (await acks.wait_for(lowered.command_id, "flagstore")).status == "applied"
    before = await settled(plane)
    order = example_ticket("order-agent")
    now = datetime.now(UTC)
    claim = command(ticket, "disable_tools", {"ai.tools.enabled": False}, command_id="atk-claim")
    attacks: dict[str, tuple[str, bytes]] = {
        # 3. the worker's own key, claiming the incident commander's authority
        "atk-claim": ("issuer_mismatch", _claiming(plane.settings, claim, "ic-rotation")),
        # 4. effects: a "reduction" that raises, a promotion that skips the plan, another workflow's route
        "atk-raise": (
            "raises_rollout",
            encode_command(
                by(
                    "platform-oncall",
                    command(ticket, "reduce_rollout", {"ai.rollout.percent": 90.0}, command_id="atk-raise"),
                )
            ),
        ),
        "atk-promote": (
            "off_plan",
            encode_command(
                signed(
                    plane.settings,
                    command(ticket, "promote", {"ai.rollout.percent": 100.0}, command_id="atk-promote"),
                )
            ),
        ),
        "atk-foreign": (
            "foreign_value",
            encode_command(
                signed(
                    plane.settings,
                    command(
                        ticket,
                        "restore_route_and_prompt",
                        {"ai.route.provider": order.control.route, "ai.prompt.version": order.control.prompt_version},
                        command_id="atk-foreign",
                    ),
                )
            ),
        ),
        # 5. time and odd numbers
        "atk-old": (
            "clock_skew",
            encode_command(
                signed(
                    plane.settings,
                    command(
                        ticket,
                        "restore_route",
                        {"ai.route.provider": ticket.control.route},
                        command_id="atk-old",
                        issued_at=now - timedelta(days=2),
                        expires_in=None,
                    ),
                )
            ),
        ),
        "atk-future": (
            "clock_skew",
            encode_command(
                signed(
                    plane.settings,
                    command(
                        ticket,
                        "restore_route",
                        {"ai.route.provider": ticket.control.route},
                        command_id="atk-future",
                        issued_at=now + timedelta(days=365),
                        expires_in=None,
                    ),
                )
            ),
        ),
        "atk-negzero": (
            "bad_value",
            encode_command(
                signed(
                    plane.settings,
                    command(ticket, "reduce_rollout", {"ai.rollout.percent": -0.0}, command_id="atk-negzero"),
                )
            ),
        ),
    }
    assert b'"ai.rollout.percent":-0.0' in attacks["atk-negzero"][1]
    async with AckReader(plane.settings) as acks:
        await publish(plane.settings, *(raw for _, raw in attacks.values()), key=WF)
        for command_id, (code, _) in attacks.items():
            for consumer in ("flagstore", "gateway-sec"):
                ack = await acks.wait_for(command_id, consumer)
                assert ack.status == "refused", (command_id, consumer, ack.detail)
                assert ack.detail is not None and ack.detail.startswith(f"{code}:"), (command_id, consumer, ack.detail)
            assert [r.code for r in plane.store.audit if r.command_id == command_id] == [code]
    assert await plane.flags() == before
    assert plane.store.outcomes.labels("refused", "clock_skew")._value.get() == 2
