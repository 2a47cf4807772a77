"""A record batch nobody can decode on the control topic costs that batch, not the control plane.

The corrupt batch is real bytes on the broker: a v2 record batch whose attributes claim
snappy over bytes that are not snappy, with a correct CRC (so only decompression fails),
produced with a raw ProduceRequest. aiokafka raises at every fetch while its position sits
on such a batch; before issue 15 the flag store's loop died on it.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from rollwatch.flagstore.latency import AckMonitor, ApplyLatency
from rollwatch.flagstore.service import FlagStore
from rollwatch.gateway import ControlSubscriber, FlagCache
from rollwatch.settings import Settings
from rollwatch.tickets import Ticket
from tests.control.helpers import AckReader, command, publish, signed
from tests.rawbatch import corrupt_snappy_batch, produce_raw

pytestmark = pytest.mark.integration


async def test_flag_store_gateway_and_ack_monitor_skip_an_undecodable_batch_and_apply_the_next_command(
    store: FlagStore, topics: Settings, ticket: Ticket
) -> None:
    latency = ApplyLatency(CollectorRegistry(), deadline_s=30.0)
    monitor = AckMonitor(topics, latency)
    cache = FlagCache()
    gateway = ControlSubscriber(topics, cache, consumer_name="gateway-u")
    await monitor.start()
    await gateway.start()
    try:
        await _skip_and_apply(store, gateway, cache, latency, topics, ticket)
    finally:
        await gateway.stop()
        await monitor.stop()


async def _skip_and_apply(
    store: FlagStore,
    gateway: ControlSubscriber,
    cache: FlagCache,
    latency: ApplyLatency,
    topics: Settings,
    ticket: Ticket,
) -> None:
    first = signed(topics, command(ticket, "set_route_mode", {"ai.route.mode": "async"}))
    async with AckReader(topics) as acks:
        await publish(topics, first)
        assert (await acks.wait_for(first.command_id, "flagstore")).status == "applied"
        for partition in range(topics.control_partitions):  # wherever the workflow's commands go
            await produce_raw(topics, topics.topic_control, partition, corrupt_snappy_batch(ticket.workflow.encode()))
        later = signed(topics, command(ticket, "set_route_mode", {"ai.route.mode": "batch"}))
        await publish(topics, later)
        assert (await acks.wait_for(later.command_id, "flagstore", timeout=20)).status == "applied"
        # The gateway may have merged the flag store's document first: then the command is a duplicate to it.
        assert (await acks.wait_for(later.command_id, "gateway-u", timeout=20)).status in ("applied", "duplicate")
    assert store._task is not None and not store._task.done()
    assert store.effective(ticket.workflow) is not None
    assert (store.effective(ticket.workflow) or {})["ai.route.mode"] == "batch"
    skipped = store.registry.get_sample_value(
        "rollwatch_flagstore_undecodable_batches_total", {"topic": topics.topic_control}
    )
    assert skipped == topics.control_partitions
    assert gateway.counts["undecodable"] == topics.control_partitions
    assert cache.flags(ticket.workflow, None)["ai.route.mode"] == "batch"
    for _ in range(100):  # the monitor reads the control topic from where it started: all four batches
        if latency.undecodable.labels(topics.topic_control)._value.get() == topics.control_partitions:
            break
        await asyncio.sleep(0.05)
    assert latency.undecodable.labels(topics.topic_control)._value.get() == topics.control_partitions
