"""End to end on the embedded broker and the real Redis: worker decision -> flag store and gateway."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from rollwatch.commands import RollbackCommand
from rollwatch.control.topics import make_consumer, partitions_of
from rollwatch.emit import TelemetryEmitter
from rollwatch.events import CallEvent, decode_message
from rollwatch.flagstore.latency import AckMonitor, ApplyLatency
from rollwatch.flagstore.redis_sink import RedisFlags
from rollwatch.flagstore.service import FlagStore
from rollwatch.gates.engine import Engine
from rollwatch.gateway import (
    ControlSubscriber,
    FlagCache,
    Gateway,
    ModelRequest,
    ModelResponse,
    ProviderSpec,
    RouteSpec,
    WorkflowRoutes,
    in_canary,
)
from rollwatch.settings import Settings
from rollwatch.signing import sign_command
from rollwatch.tickets import Ticket
from tests.control.helpers import AckReader, command, publish, signed, wait_until

pytestmark = pytest.mark.integration

WF = "support-summary"
CANARY_USER = next(f"user-{i}" for i in range(1000) if in_canary(WF, f"user-{i}", 5))


async def provider(request: ModelRequest) -> ModelResponse:
    return ModelResponse(output=f"{request.route}|{request.prompt_version}", cost_usd=0.001)


def routes() -> WorkflowRoutes:
    return WorkflowRoutes(
        WF,
        blue=RouteSpec("support-summary/stable", (ProviderSpec("anthropic-stable", provider),)),
        others=(RouteSpec("support-summary/candidate", (ProviderSpec("anthropic-candidate", provider),)),),
    )


def worker_decision(ticket: Ticket, settings: Settings) -> RollbackCommand:
    """What the worker publishes: the engine judges a breach of the error-rate gate, then signs."""
    engine = Engine(WF)
    engine.install(ticket)
    now = int(time.time() * 1000)
    events = []
    for i in range(300):
        for arm, route in (("candidate", ticket.candidate.route), ("control", ticket.control.route)):
            failed = arm == "candidate" and i % 3 == 0
            events.append(
                CallEvent(
                    event_id=f"{arm}-{i}",
                    ts_ms=now - 60_000 + i * 100,
                    workflow=WF,
                    route=route,
                    latency_ms=100.0,
                    status="error" if failed else "ok",
                    schema_valid=True,
                    safety_blocked=False,
                    task_success=not failed,
                    cost_usd=0.001,
                    arm=arm,  # type: ignore[arg-type]
                )
            )
    engine.apply(events)
    (emission,) = engine.evaluate(now)
    return sign_command(emission.command, settings.signing_key_id, settings.signing_key)


@dataclass
class Plane:
    store: FlagStore
    cache: FlagCache
    subscriber: ControlSubscriber
    gateway: Gateway
    emitter: TelemetryEmitter
    latency: ApplyLatency


@pytest.fixture
async def plane(topics: Settings, redis_client: Redis) -> AsyncIterator[Plane]:
    store = FlagStore(topics, redis=RedisFlags(redis_client, topics.redis_prefix))
    latency = ApplyLatency(CollectorRegistry(), deadline_s=1.0)
    monitor = AckMonitor(topics, latency)
    cache = FlagCache()
    subscriber = ControlSubscriber(topics, cache, consumer_name="gateway-1")
    emitter = TelemetryEmitter(topics, linger_ms=5)
    await store.start()
    await monitor.start()
    await subscriber.start()
    await emitter.start()
    gateway = Gateway([routes()], cache, emitter=emitter)
    try:
        yield Plane(store, cache, subscriber, gateway, emitter, latency)
    finally:
        await gateway.close()
        await emitter.close()
        await subscriber.stop()
        await monitor.stop()
        await store.stop()


async def test_a_worker_rollback_reaches_both_consumers_and_the_next_request_takes_the_restored_route(
    plane: Plane, topics: Settings, ticket: Ticket, redis_client: Redis
) -> None:
    before = await plane.gateway.handle(WF, CANARY_USER, "summarize")
    assert (before.decision.arm, before.output) == ("candidate", "support-summary/candidate|support-summary-v15")

    decision = worker_decision(ticket, topics)
    assert decision.action == "restore_route_and_prompt" and decision.issued_by == "rollwatch-worker"
    async with AckReader(topics) as acks:
        await publish(topics, decision)
        assert (await acks.wait_for(decision.command_id, "flagstore")).status == "applied"
        assert (await acks.wait_for(decision.command_id, "gateway-1")).status == "applied"

    after = await plane.gateway.handle(WF, CANARY_USER, "summarize")
    assert (after.decision.arm, after.output) == ("control", "support-summary/stable|support-summary-v14")
    stored = await RedisFlags(redis_client, topics.redis_prefix).read(WF)
    assert stored["flags"]["ai.route.provider"] == "support-summary/stable"

    # The monitor joined both acks with the command: one apply time per consumer.
    await wait_until(lambda: _observations(plane.latency, "gateway-1") == 1, what="gateway apply time")
    await wait_until(lambda: _observations(plane.latency, "flagstore") == 1, what="flag store apply time")

    # The gateway's telemetry left through the emitter, keyed by workflow, one event per request.
    assert await plane.emitter.flush(timeout=10)
    routes_seen = await _telemetry_routes(topics, 2)
    assert routes_seen == ["support-summary/candidate", "support-summary/stable"]


def _observations(latency: ApplyLatency, consumer: str) -> float:
    for metric in latency.histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels.get("consumer") == consumer:
                return sample.value
    return 0.0


async def _telemetry_routes(settings: Settings, count: int) -> list[str]:
    consumer = make_consumer(settings)
    await consumer.start()
    seen: list[str] = []
    try:
        tps = await partitions_of(consumer, settings.topic_telemetry)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 10
        while len(seen) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    assert record.key == WF.encode()
                    seen.extend(e.route for e in decode_message(record.value).events)
    finally:
        await consumer.stop()
    return seen


async def test_the_gateway_refuses_what_the_flag_store_refuses(plane: Plane, topics: Settings, ticket: Ticket) -> None:
    forged = signed(topics, command(ticket, "restore_route", {"ai.route.provider": "support-summary/stable"}))
    forged = forged.model_copy(update={"flags": {"ai.route.provider": "evil/route"}})
    unauthorized = signed(topics, command(ticket, "disable_tools", {"ai.tools.enabled": False}))
    before = plane.cache.flags(WF)
    async with AckReader(topics) as acks:
        await publish(topics, forged, unauthorized)
        for cmd, code in ((forged, "bad_signature"), (unauthorized, "unauthorized")):
            for consumer in ("flagstore", "gateway-1"):
                ack = await acks.wait_for(cmd.command_id, consumer)
                assert ack.status == "refused" and (ack.detail or "").startswith(code), (consumer, ack)
    assert plane.cache.flags(WF) == before
    assert plane.subscriber.counts["refused"] == 2 and plane.subscriber.counts["applied"] == 0


async def test_a_gateway_started_later_takes_the_state_from_the_flag_store(
    plane: Plane, topics: Settings, ticket: Ticket
) -> None:
    cmd = signed(topics, command(ticket, "set_action_mode", {"ai.action.mode": "review"}, segment="enterprise"))
    async with AckReader(topics) as acks:
        await publish(topics, cmd)
        await acks.wait_for(cmd.command_id, "flagstore")
        await acks.wait_for(cmd.command_id, "gateway-1")
    late_cache = FlagCache()
    async with ControlSubscriber(topics, late_cache, consumer_name="gateway-late") as late:
        assert late.counts["merged"] == 1
        assert late_cache.flags(WF, "enterprise") == plane.cache.flags(WF, "enterprise")
        assert late_cache.flags(WF, "enterprise")["ai.action.mode"] == "review"
        nxt = signed(topics, command(ticket, "set_route_mode", {"ai.route.mode": "async"}))
        async with AckReader(topics) as acks:
            await publish(topics, nxt)
            assert (await acks.wait_for(nxt.command_id, "gateway-late")).status == "applied"
        assert late.counts["applied"] == 1  # the earlier command was not read again
    assert late_cache.flags(WF)["ai.route.mode"] == "async"


async def test_commands_nobody_applies_are_counted_after_the_deadline(topics: Settings, ticket: Ticket) -> None:
    latency = ApplyLatency(CollectorRegistry(), deadline_s=0.3)
    monitor = AckMonitor(topics, latency)
    await monitor.start()
    try:
        await publish(topics, signed(topics, command(ticket, "restore_route", {"ai.route.provider": "x"})))
        await wait_until(lambda: latency.unacknowledged._value.get() == 1.0, what="the unacknowledged count")
    finally:
        await monitor.stop()
