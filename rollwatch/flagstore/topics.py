"""Kafka helpers shared by the flag store, the gateway subscriber and the drill.

Consumers here never join a consumer group: partitions are assigned by hand and
positioned explicitly. Group joins are slow on the embedded broker and pointless for
a process that must see every partition of a small control topic anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from rollwatch.flagstore.errors import FlagStoreError
from rollwatch.kafka import client_options
from rollwatch.settings import Settings

__all__ = ["make_consumer", "partitions_of", "read_to_end", "send_retrying"]


def make_consumer(settings: Settings, **extra: Any) -> AIOKafkaConsumer:
    """A consumer tuned for control traffic: small fetch waits, no auto-commit."""
    options = client_options(settings) | {"enable_auto_commit": False, "fetch_max_wait_ms": 50}
    return AIOKafkaConsumer(**(options | extra))


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``; raises :class:`FlagStoreError` when it does not exist."""
    await consumer.topics()  # refreshes metadata
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise FlagStoreError(f"topic {topic!r} does not exist (run `rollwatch topics create`)")
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def read_to_end(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    on_record: Callable[[Any], None],
    timeout_s: float = 15.0,
) -> None:
    """Feed every record up to the end offsets (as of now) of ``tps`` to ``on_record``."""
    end = await consumer.end_offsets(tps)
    deadline = time.monotonic() + timeout_s
    while True:
        behind = [tp for tp in tps if await consumer.position(tp) < end[tp]]
        if not behind:
            return
        if time.monotonic() > deadline:
            raise FlagStoreError(f"could not read {behind[0].topic} to its end within {timeout_s:.0f}s")
        batches = await consumer.getmany(*behind, timeout_ms=200)
        for records in batches.values():
            for record in records:
                on_record(record)


async def send_retrying(
    producer: AIOKafkaProducer,
    topic: str,
    value: bytes,
    key: bytes,
    stopping: Callable[[], bool],
    on_error: Callable[[Exception], Awaitable[None] | None] | None = None,
) -> bool:
    """Send until the broker takes it or the process is stopping; whether it was sent.

    Used where losing the write is worse than waiting (a flag state, an ack): with the
    broker down nobody receives commands anyway, so waiting costs nothing extra.
    """
    delay = 0.1
    while True:
        try:
            await producer.send_and_wait(topic, value, key=key)
            return True
        except KafkaError as exc:
            if on_error is not None:
                result = on_error(exc)
                if result is not None:
                    await result
            if stopping():
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
