"""Canary for the Tansu quirk the checkpoint writer works around (see ``Pipeline._write_checkpoints``).

Tansu answers ListOffsets(latest) with the base offset of the last record batch plus one.
faust's table recovery trusts that number, so a multi-record changelog batch would be
partly lost on recovery. When this test fails, Tansu reports true end offsets and the
workaround (one extra round trip per batch) can go.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from rollwatch.kafka import client_options, make_producer
from rollwatch.settings import Settings

pytestmark = pytest.mark.integration


async def test_tansu_end_offset_stops_at_the_base_of_the_last_batch(kafka_settings: Settings) -> None:
    topic = f"canary-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**client_options(kafka_settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = make_producer(kafka_settings, linger_ms=50)
    await producer.start()
    try:
        futures = [await producer.send(topic, b"v", key=b"k%d" % i, partition=0) for i in range(4)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(**client_options(kafka_settings))
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        assert (await consumer.end_offsets([tp]))[tp] == 1  # a correct broker says 4
    finally:
        await consumer.stop()
