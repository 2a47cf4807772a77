"""After a broker loss the flag store takes the rolled-back flags back from Redis (issue 16).

A rollback is applied; the broker then comes back empty (the embedded broker keeps
nothing, like a cluster that lost its topics), the topics are recreated and the tickets
re-published as an operator would. The restarted flag store must not serve the ticket's
candidate again: the verified document in Redis is taken back and re-published, so HTTP,
OFREP, Redis, the flags topic and a freshly started gateway all show the rolled-back
values, and the applied command is still a duplicate. A forged Redis hash of a workflow
with a ticket, and a plain hash without a document, are refused, counted, audited, and
not served: the first is rewritten with the ticket's state, the second deleted.
"""

from __future__ import annotations

import aiohttp
import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from rollwatch.broker import EmbeddedBroker, free_port
from rollwatch.control.state import WorkflowFlags, decode_state
from rollwatch.control.topics import load_flag_states
from rollwatch.flagstore.http import serve
from rollwatch.flagstore.redis_sink import DOCUMENT_FIELD, RedisFlags
from rollwatch.flagstore.service import FlagStore
from rollwatch.gateway import ControlSubscriber, FlagCache
from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings
from rollwatch.signing import keyring_from_settings
from rollwatch.tickets import candidate_flags
from tests.control.helpers import AckReader, command, example_ticket, publish, publish_ticket, signed

pytestmark = pytest.mark.integration

WF = "support-summary"
FORGED_WF = "refund-drafting"
GHOST_WF = "ghost-workflow"


async def _tickets_published(settings: Settings) -> None:
    await ensure_topics(settings)
    await publish_ticket(settings, example_ticket(WF))
    await publish_ticket(settings, example_ticket(FORGED_WF))


async def _get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


async def _ofrep(base: str, workflow: str) -> dict[str, object]:
    body = {"context": {"workflow": workflow, "targetingKey": "user-1"}}
    async with aiohttp.ClientSession() as http, http.post(f"{base}/ofrep/v1/evaluate/flags", json=body) as resp:
        assert resp.status == 200
        return {f["key"]: f["value"] for f in (await resp.json())["flags"]}


async def test_a_restarted_flag_store_keeps_the_rollback_after_the_broker_lost_its_topics(
    own_broker: EmbeddedBroker, loss_settings: Settings
) -> None:
    settings = loss_settings
    ticket = example_ticket(WF)
    rolled_back = {"ai.route.provider": ticket.control.route, "ai.rollout.percent": 1.0}
    assert candidate_flags(ticket)["ai.route.provider"] != ticket.control.route  # a rollback is visible
    redis = Redis.from_url(settings.redis_url)
    sink = RedisFlags(redis, settings.redis_prefix)
    await _tickets_published(settings)
    store = FlagStore(settings, redis=sink)
    await store.start()
    rollback = signed(settings, command(ticket, "restore_route", {"ai.route.provider": ticket.control.route}))
    freeze = signed(settings, command(ticket, "freeze_rollout", {"ai.rollout.percent": 1.0}))
    try:
        async with AckReader(settings) as acks:
            await publish(settings, rollback, freeze)
            for cmd in (rollback, freeze):
                assert (await acks.wait_for(cmd.command_id, "flagstore")).status == "applied"
    finally:
        await store.stop()
    applied = store.effective(WF)
    assert applied is not None and {k: applied[k] for k in rolled_back} == rolled_back

    # The broker loses everything; topics and tickets come back, the flags do not.
    own_broker.stop()
    own_broker.start()
    await _tickets_published(settings)
    assert await load_flag_states(settings, None) == []

    # Redis meanwhile: a forged copy for a workflow with a ticket, and a plain hash without a document.
    forged = orjson.loads(WorkflowFlags(FORGED_WF, {"ai.route.provider": "attacker/route"}).to_json(store.signer))
    forged["flags"]["ai.rollout.percent"] = 100.0  # altered after signing
    await redis.hset(
        sink.key(FORGED_WF), mapping={"ai.route.provider": b'"attacker/route"', DOCUMENT_FIELD: orjson.dumps(forged)}
    )
    await redis.hset(sink.key(GHOST_WF), mapping={"ai.route.provider": b'"attacker/route"'})

    restarted = FlagStore(settings, name="flagstore", redis=sink, registry=CollectorRegistry())
    await restarted.start()
    port = free_port()
    runner = await serve(restarted, "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    try:
        in_force = restarted.effective(WF)
        assert in_force is not None and {k: in_force[k] for k in rolled_back} == rolled_back
        assert in_force == applied  # the ticket's state under the same command layers as before the loss

        status, view = await _get(f"{base}/flags/{WF}")
        assert status == 200 and view["flags"] == applied
        ofrep = await _ofrep(base, WF)
        assert {k: ofrep[k] for k in rolled_back} == rolled_back
        hashed = await sink.read(WF)
        assert hashed["flags"] == applied
        kept = await redis.hget(sink.key(WF), DOCUMENT_FIELD)
        assert isinstance(kept, bytes) and decode_state(kept, keyring_from_settings(settings)).flags == rolled_back
        (on_topic,) = [s for s in await load_flag_states(settings, keyring_from_settings(settings)) if s.workflow == WF]
        assert on_topic.flags == rolled_back and on_topic.applied == [rollback.command_id, freeze.command_id]

        # The forged copy is not served anywhere; the plain one is gone.
        candidate = {str(k): v for k, v in candidate_flags(example_ticket(FORGED_WF)).items()}
        assert restarted.effective(FORGED_WF) == candidate
        status, view = await _get(f"{base}/flags/{FORGED_WF}")
        assert status == 200 and view["flags"] == candidate
        assert (await _ofrep(base, FORGED_WF))["ai.route.provider"] == candidate["ai.route.provider"]
        assert (await sink.read(FORGED_WF))["flags"] == candidate
        assert not await redis.exists(sink.key(GHOST_WF))
        assert (await _get(f"{base}/flags/{GHOST_WF}"))[0] == 404

        # Said in /healthz, the metrics and the audit trail.
        status, health = await _get(f"{base}/healthz")
        reconciliation = health["redis_reconciliation"]
        assert isinstance(reconciliation, dict) and reconciliation["adopted"] == [WF]
        assert reconciliation["refused"].keys() == {FORGED_WF, GHOST_WF}
        assert reconciliation["refused"][FORGED_WF].startswith("bad_signature: ")
        assert reconciliation["refused"][GHOST_WF] == "unsigned: the hash holds no signed flags document"
        reconciled = restarted.registry.get_sample_value
        assert reconciled("rollwatch_flagstore_redis_reconciled_total", {"outcome": "adopted", "code": "verified"}) == 1
        for code in ("bad_signature", "unsigned"):
            assert reconciled("rollwatch_flagstore_redis_reconciled_total", {"outcome": "refused", "code": code}) == 1
        audited = {(r.workflow, r.outcome, r.code) for r in restarted.audit if r.subject == "redis"}
        assert audited == {
            (WF, "applied", "reconciled"),
            (FORGED_WF, "refused", "bad_signature"),
            (GHOST_WF, "refused", "unsigned"),
        }

        # The command ids came back with the document: the rollback replayed is a duplicate.
        async with AckReader(settings) as acks:
            await publish(settings, rollback)
            assert (await acks.wait_for(rollback.command_id, "flagstore")).status == "duplicate"
        # A gateway started now reads the same flags from the re-published document.
        cache = FlagCache()
        async with ControlSubscriber(settings, cache, consumer_name="gateway-after-loss"):
            assert cache.flags(WF) == applied
    finally:
        await runner.cleanup()
        await restarted.stop()
        await redis.aclose()
