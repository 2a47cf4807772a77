"""Broker stopped and restarted: the emitter, the flag store and a gateway reconnect on their own.

The embedded broker keeps everything in memory, so the broker that comes back on the
same port is a new, empty one: the test re-creates the topics (``ensure_topics``, what
``rollwatch topics create`` does) and nothing else. No component is restarted or told
about the outage; each must find the broker again by itself. The emitter must count
what it could not keep while the broker was away (never lose an event silently), and
a command signed after the restart must reach both the flag store and the gateway.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiokafka import TopicPartition
from redis.asyncio import Redis

from rollwatch.broker import EmbeddedBroker
from rollwatch.control.topics import load_flag_states, make_consumer, partitions_of
from rollwatch.emit import TelemetryEmitter
from rollwatch.events import CallEvent, decode_message
from rollwatch.flagstore.redis_sink import RedisFlags
from rollwatch.flagstore.service import FlagStore
from rollwatch.gateway import ControlSubscriber, FlagCache
from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings
from rollwatch.signing import keyring_from_settings
from rollwatch.tickets import Ticket
from tests.control.helpers import AckReader, command, example_ticket, publish, publish_ticket, signed, wait_until

pytestmark = pytest.mark.integration

WF = "support-summary"


def call(event_id: str) -> CallEvent:
    return CallEvent(
        event_id=event_id,
        ts_ms=int(time.time() * 1000),
        workflow=WF,
        route="support-summary/candidate",
        latency_ms=10.0,
        status="ok",
        schema_valid=True,
        safety_blocked=False,
        task_success=True,
        cost_usd=0.001,
    )


async def telemetry_ids(settings: Settings, expected: int, timeout: float = 20.0) -> list[str]:
    """Every event id on the telemetry topic, once ``expected`` of them have arrived."""
    consumer = make_consumer(settings)
    await consumer.start()
    ids: list[str] = []
    try:
        tps = await partitions_of(consumer, settings.topic_telemetry)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while len(ids) < expected:
            assert time.monotonic() < deadline, f"only {len(ids)} of {expected} events arrived"
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    ids.extend(e.event_id for e in decode_message(record.value).events)
    finally:
        await consumer.stop()
    return ids


@pytest.fixture
async def settings(loss_settings: Settings) -> Settings:
    await ensure_topics(loss_settings)
    await publish_ticket(loss_settings, example_ticket())
    return loss_settings


def recreate_topics_before_clients_act(settings: Settings) -> None:
    """Create the topics on the new broker while this test's event loop is blocked.

    With a persistent Kafka a restarted broker still has its topics. The in-memory
    broker comes back empty, and Tansu accepts a produce to a topic that does not exist
    yet; a ``create_topics`` racing with it leaves that partition's offsets inconsistent
    (records acked and then shadowed). Creating the topics from another thread while
    the loop that runs every client here is blocked reproduces the persistent case:
    no client gets a turn until the topics are back.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, ensure_topics(settings)).result(timeout=30)


async def test_emitter_flag_store_and_gateway_reconnect_after_a_broker_restart(
    own_broker: EmbeddedBroker, settings: Settings
) -> None:
    ticket: Ticket = example_ticket()
    redis = Redis.from_url(settings.redis_url)
    store = FlagStore(settings, redis=RedisFlags(redis, settings.redis_prefix))
    cache = FlagCache()
    gateway = ControlSubscriber(settings, cache, consumer_name="gateway-eu")
    emitter = TelemetryEmitter(settings, linger_ms=5, max_batch=10, max_buffered=50, send_timeout_s=1.0)
    await store.start()
    await gateway.start()
    await emitter.start()
    try:
        # Before the outage: everything works.
        before = signed(settings, command(ticket, "freeze_rollout", {"ai.rollout.percent": 1.0}))
        async with AckReader(settings) as acks:
            await publish(settings, before)
            assert (await acks.wait_for(before.command_id, "flagstore")).status == "applied"
            assert (await acks.wait_for(before.command_id, "gateway-eu")).status == "applied"
        for i in range(5):
            emitter.emit(call(f"before-{i}"))
        assert await emitter.flush(10)
        assert emitter.stats.sent == 5

        # The outage: the emitter keeps taking calls, bounded, and counts what it must let go.
        own_broker.stop()
        emitted = 5
        for i in range(200):
            emitter.emit(call(f"down-{uuid.uuid4().hex[:6]}-{i}"))
            emitted += 1
        await asyncio.sleep(2.5)  # sends fail against the dead broker meanwhile
        during = emitter.stats
        assert during.sent == 5
        assert during.buffered <= 50
        assert during.dropped.get("overflow", 0) >= 150
        assert during.send_errors > 0
        assert emitted == during.sent + during.buffered + during.dropped_total  # nothing silent

        # A new (empty) broker on the same port; topics re-created as an operator would.
        own_broker.start()  # the same port: port_is_free binds with SO_REUSEADDR, as Tansu does
        recreate_topics_before_clients_act(settings)

        # The emitter delivers what it kept, then new events, without being restarted. (New
        # events are emitted once the kept ones are through: while all 50 are in flight the
        # buffer is full of events it may not evict, and a new one would be refused, counted.)
        assert await emitter.flush(30), f"emitter did not drain after the restart: {emitter.stats}"
        kept = emitter.stats.sent - 5
        assert kept == during.buffered
        for i in range(10):
            emitter.emit(call(f"after-{i}"))
            emitted += 1
        assert await emitter.flush(30), f"emitter did not drain after the restart: {emitter.stats}"
        after = emitter.stats
        assert after.buffered == 0
        assert after.dropped == during.dropped  # nothing more lost once the broker was back
        assert emitted == after.sent + after.dropped_total  # every event: delivered or counted
        delivered = await telemetry_ids(settings, kept + 10)
        assert {f"after-{i}" for i in range(10)} <= set(delivered)
        assert len(delivered) == len(set(delivered)) == kept + 10  # the new broker holds each once

        # A command signed after the restart reaches the flag store and the gateway. Both
        # notice that the control partition they read came back empty, and read it again
        # from its start (ResetWatch) rather than wait at their old position.
        state = store.book.get(WF)
        assert state is not None and state.partition is not None
        ctl = TopicPartition(settings.topic_control, state.partition)
        await wait_until(
            lambda: store.reset_watch is not None and ctl in store.reset_watch.rewound, 30, "the flag store to rewind"
        )
        await wait_until(
            lambda: gateway.reset_watch is not None and ctl in gateway.reset_watch.rewound, 30, "the gateway to rewind"
        )
        # The flag store also writes its documents to the new, empty flags topic again, so a
        # gateway started after the loss does not fall back to the ticket's candidate.
        deadline = time.monotonic() + 30
        while not any(
            s.workflow == WF and s.flags == {"ai.rollout.percent": 1.0}
            for s in await load_flag_states(settings, keyring_from_settings(settings))
        ):
            assert time.monotonic() < deadline, "the flag store did not re-publish its documents after the loss"
            await asyncio.sleep(0.2)
        restore = signed(settings, command(ticket, "restore_route", {"ai.route.provider": ticket.control.route}))
        async with AckReader(settings) as acks:
            await publish(settings, restore)
            await wait_until(lambda: store.book.seen(restore.command_id), 30, "the flag store to apply it")
            await wait_until(lambda: cache.book.seen(restore.command_id), 30, "the gateway to apply it")
            assert (await acks.wait_for(restore.command_id, "flagstore", 30)).status == "applied"
            assert (await acks.wait_for(restore.command_id, "gateway-eu", 30)).status == "applied"
        assert store.effective(WF) is not None
        assert store.effective(WF)["ai.route.provider"] == ticket.control.route  # type: ignore[index]
        assert cache.flags(WF)["ai.route.provider"] == ticket.control.route
        assert cache.flags(WF)["ai.rollout.percent"] == 1.0  # state from before the outage kept
        hashed = await RedisFlags(redis, settings.redis_prefix).read(WF)
        assert hashed["flags"]["ai.route.provider"] == ticket.control.route
    finally:
        await emitter.close(2)
        await gateway.stop()
        await store.stop()
        await redis.aclose()
