"""The flag store on the embedded broker and the real Redis: apply, refuse, audit, ack, rebuild."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from redis.asyncio import Redis

from rollwatch.broker import free_port
from rollwatch.commands import Signature
from rollwatch.control.topics import load_flag_states
from rollwatch.flagstore.http import serve
from rollwatch.flagstore.redis_sink import RedisFlags
from rollwatch.flagstore.service import FlagStore
from rollwatch.gateway import FlagCache, FlagStorePoller
from rollwatch.settings import Settings
from rollwatch.signing import sign_command
from rollwatch.tickets import Ticket
from rollwatch.trust import keyring_from_settings
from tests.control.helpers import AckReader, by, command, publish, publish_ticket, signed

pytestmark = pytest.mark.integration

WF = "support-summary"


@pytest.fixture
async def store(topics: Settings, redis_client: Redis) -> AsyncIterator[FlagStore]:
    flag_store = FlagStore(topics, redis=RedisFlags(redis_client, topics.redis_prefix))
    await flag_store.start()
    try:
        yield flag_store
    finally:
        await flag_store.stop()


async def test_an_applied_command_reaches_the_flags_topic_redis_and_http(
    store: FlagStore, topics: Settings, ticket: Ticket, redis_client: Redis
) -> None:
    restore = signed(
        topics,
        command(
            ticket,
            "restore_route_and_prompt",
            {
                "ai.route.provider": ticket.control.route,
                "ai.prompt.version": ticket.control.prompt_version,
            },
        ),
    )
    draft = signed(topics, command(ticket, "set_action_mode", {"ai.action.mode": "draft"}, segment="enterprise"))
    async with AckReader(topics) as acks:
        await publish(topics, restore, draft)
        assert (await acks.wait_for(restore.command_id, "flagstore")).status == "applied"
        assert (await acks.wait_for(draft.command_id, "flagstore")).status == "applied"

    (state,) = await load_flag_states(topics, keyring_from_settings(topics))
    assert state.workflow == WF
    assert state.flags == {"ai.route.provider": "support-summary/stable", "ai.prompt.version": "support-summary-v14"}
    assert state.segments == {"enterprise": {"ai.action.mode": "draft"}}
    assert state.applied == [restore.command_id, draft.command_id]

    hashed = await RedisFlags(redis_client, topics.redis_prefix).read(WF)
    assert hashed["flags"]["ai.route.provider"] == "support-summary/stable"
    assert hashed["flags"]["ai.action.mode"] == "auto"  # from the ticket, no command changed it
    assert hashed["flags"]["ai.rollout.percent"] == 5.0
    assert hashed["segments"]["enterprise"]["ai.action.mode"] == "draft"
    assert hashed["segments"]["enterprise"]["ai.prompt.version"] == "support-summary-v14"
    assert hashed["meta"]["last_command_id"] == draft.command_id

    port = free_port()
    runner = await serve(store, "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/flags/{WF}", params={"segment": "enterprise"}) as resp:
                body = await resp.json()
            async with http.get(f"http://127.0.0.1:{port}/audit", params={"workflow": WF}) as resp:
                audit = await resp.json()
            async with http.get(f"http://127.0.0.1:{port}/flags/nope") as resp:
                assert resp.status == 404
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                metrics = await resp.text()
    finally:
        await runner.cleanup()
    assert body["flags"]["ai.action.mode"] == "draft"
    assert body["flags"]["ai.route.provider"] == "support-summary/stable"
    assert body["ticket"] == {"id": "REL-2041", "revision": 3}
    assert [r["command_id"] for r in audit["records"]] == [draft.command_id, restore.command_id]
    assert 'rollwatch_flagstore_commands_total{code="applied",outcome="applied"} 2.0' in metrics


async def test_forged_replayed_expired_and_unauthorized_commands_are_refused_and_audited(
    store: FlagStore, topics: Settings, ticket: Ticket
) -> None:
    good = command(ticket, "restore_route", {"ai.route.provider": ticket.control.route})
    tampered = signed(topics, good).model_copy(update={"flags": {"ai.route.provider": "attacker/route"}})
    other_secret = sign_command(good.model_copy(update={"command_id": "c-other"}), "test-key", secrets.token_hex(16))
    unknown_key = sign_command(good.model_copy(update={"command_id": "c-unknown"}), "nobody", "whatever")
    old = datetime.now(UTC) - timedelta(hours=2)
    cases = {
        "bad_signature": tampered,
        "unsigned": good.model_copy(update={"command_id": "c-unsigned"}),
        "unknown_key": unknown_key,
        "expired": signed(
            topics,
            command(
                ticket,
                "restore_route",
                {"ai.route.provider": ticket.control.route},
                issued_at=old,
                expires_in=timedelta(hours=1),
            ),
        ),
        "unauthorized": signed(topics, command(ticket, "disable_tools", {"ai.tools.enabled": False})),
        "stale_ticket": signed(topics, command(ticket, "restore_route", {"ai.route.provider": "x"}, revision=2)),
    }
    wrong_secret = other_secret
    restore = {"ai.route.provider": ticket.control.route}
    support = by("support-lead", command(ticket, "restore_route", restore))
    smuggle = by("luis.ortega", command(ticket, "freeze_rollout", restore))
    stranger = by("mallory", command(ticket, "restore_route", restore))
    async with AckReader(topics) as acks:
        await publish(topics, *cases.values(), wrong_secret, support, smuggle, stranger)
        await publish(topics, b'{"command_id": "junk-1", "workflow": "support-summary"}', key=WF)
        for code, cmd in cases.items():
            ack = await acks.wait_for(cmd.command_id, "flagstore")
            assert ack.status == "refused"
            assert ack.detail is not None and ack.detail.startswith(code + ":"), (code, ack.detail)
        for cmd in (support, smuggle, stranger):
            assert (await acks.wait_for(cmd.command_id, "flagstore")).detail.startswith("unauthorized:")  # type: ignore[union-attr]
        assert (await acks.wait_for(wrong_secret.command_id, "flagstore")).detail.startswith("bad_signature:")  # type: ignore[union-attr]
        junk = await acks.wait_for("junk-1", "flagstore")
        assert junk.status == "refused" and junk.detail is not None and junk.detail.startswith("malformed:")

    assert store.book.get(WF) is None  # nothing changed the flags
    refused = {r.command_id: r for r in store.audit if r.outcome == "refused"}
    assert refused[tampered.command_id].code == "bad_signature"
    assert refused[smuggle.command_id].detail.endswith("(needs a grant of restore_route, restore_route_and_prompt)")
    assert refused[stranger.command_id].detail == "'mallory' holds no role in ticket REL-2041 r3"
    assert refused["junk-1"].code == "malformed"
    assert len(store.audit) == len(cases) + 5


async def test_a_repeated_command_id_changes_nothing_even_after_a_restart(
    store: FlagStore, topics: Settings, ticket: Ticket, redis_client: Redis
) -> None:
    first = signed(topics, command(ticket, "restore_route", {"ai.route.provider": ticket.control.route}))
    second = signed(topics, command(ticket, "reduce_rollout", {"ai.rollout.percent": 1.0}))
    async with AckReader(topics) as acks:
        await publish(topics, first, second, first)
        assert [a.status for a in await acks.collect(first.command_id, "flagstore", 2)] == ["applied", "duplicate"]
    state = store.book.get(WF)
    assert state is not None and state.version == 2 and state.last_command_id == second.command_id

    await store.stop()
    await redis_client.delete(RedisFlags(redis_client, topics.redis_prefix).key(WF))
    restarted = FlagStore(topics, redis=RedisFlags(redis_client, topics.redis_prefix))
    await restarted.start()
    try:
        assert restarted.effective(WF) == store.effective(WF)
        rebuilt = restarted.book.get(WF)
        assert rebuilt is not None and rebuilt.version == 2
        assert len(restarted.audit) == 0  # resumed after the committed offset: nothing re-read
        assert (await RedisFlags(redis_client, topics.redis_prefix).read(WF))["flags"]["ai.rollout.percent"] == 1.0
        async with AckReader(topics) as acks:
            await publish(topics, first)  # an attacker or a retry replays the first command
            replies = await acks.collect(first.command_id, "flagstore", 3)
        assert [a.status for a in replies] == ["applied", "duplicate", "duplicate"]
        assert restarted.book.get(WF).version == 2  # type: ignore[union-attr]
    finally:
        await restarted.stop()


async def test_a_new_flag_store_resumes_after_the_commands_its_state_contains(
    store: FlagStore, topics: Settings, ticket: Ticket
) -> None:
    applied = signed(topics, command(ticket, "restore_prompt", {"ai.prompt.version": "support-summary-v14"}))
    async with AckReader(topics) as acks:
        await publish(topics, applied)
        await acks.wait_for(applied.command_id, "flagstore")
    fresh = FlagStore(topics, name="flagstore-b")  # no committed offset of its own
    await fresh.start()
    try:
        assert fresh.effective(WF) == store.effective(WF)
        later = signed(topics, command(ticket, "set_route_mode", {"ai.route.mode": "async"}))
        async with AckReader(topics) as acks:
            await publish(topics, later)
            await acks.wait_for(later.command_id, "flagstore-b")
        assert [r.command_id for r in fresh.audit] == [later.command_id]
    finally:
        await fresh.stop()


async def test_ed25519_keys_verify_and_an_algorithm_switch_is_refused(
    store: FlagStore, topics: Settings, ticket: Ticket
) -> None:
    good = by("platform-oncall", command(ticket, "reduce_rollout", {"ai.rollout.percent": 0.0}))
    confused = good.model_copy(update={"command_id": "c-confused"})
    confused = confused.model_copy(
        update={"signature": Signature(alg="hmac-sha256", key_id="platform-oncall-key", canon="rfc8785", value="AAAA")}
    )
    assert good.signature is not None and good.signature.alg == "ed25519"
    async with AckReader(topics) as acks:
        await publish(topics, good, confused)
        assert (await acks.wait_for(good.command_id, "flagstore")).status == "applied"
        assert (await acks.wait_for("c-confused", "flagstore")).detail.startswith("wrong_alg:")  # type: ignore[union-attr]


async def test_a_ticket_revision_published_with_its_command_is_honoured(
    store: FlagStore, topics: Settings, ticket: Ticket
) -> None:
    revised = ticket.model_copy(update={"revision": 4})
    cmd = signed(topics, command(revised, "restore_route", {"ai.route.provider": ticket.control.route}))
    async with AckReader(topics) as acks:
        await publish_ticket(topics, revised)
        await publish(topics, cmd)
        assert (await acks.wait_for(cmd.command_id, "flagstore")).status == "applied"
    flags = store.effective(WF)
    assert flags is not None and flags["ai.route.provider"] == ticket.control.route
    assert store.tickets.get(WF) == revised


async def test_a_gateway_without_kafka_polls_the_flag_store_and_keeps_flags_through_an_outage(
    store: FlagStore, topics: Settings, ticket: Ticket
) -> None:
    cmd = signed(topics, command(ticket, "set_action_mode", {"ai.action.mode": "review"}, segment="enterprise"))
    async with AckReader(topics) as acks:
        await publish(topics, cmd)
        await acks.wait_for(cmd.command_id, "flagstore")
    port = free_port()
    runner = await serve(store, "127.0.0.1", port)
    cache = FlagCache()
    poller = FlagStorePoller(cache, f"http://127.0.0.1:{port}", [WF, "no-such-workflow"], interval_s=60)
    try:
        assert await poller.poll_once() == 1
        assert cache.flags(WF) == store.effective(WF)
        assert cache.flags(WF, "enterprise") == store.effective(WF, "enterprise")
        assert await poller.poll_once() == 0  # nothing new
        await runner.cleanup()
        assert await poller.poll_once() == 0
        assert poller.failures == 2  # one per workflow
        assert cache.flags(WF, "enterprise")["ai.action.mode"] == "review"
    finally:
        await poller.stop()
        await runner.cleanup()
