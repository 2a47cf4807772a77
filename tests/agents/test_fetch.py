"""The worker's skip of undecodable batches, against the real aiokafka fetcher (issue 15).

:mod:`rollwatch.agents.fetch` reads aiokafka internals (the frames of
``Fetcher.fetched_records``, ``FetchResult.getall`` and ``PartitionRecords._unpack_records``).
These tests drive the installed library into the fault on a real broker, so they fail if
aiokafka changes shape; the last test does the same for the faust methods
:mod:`rollwatch.agents.consumer` overrides. The live worker is tested in
``test_undecodable_worker.py``.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

from rollwatch.agents.consumer import SkippingConsumer, SkippingConsumerThread, SkippingTransport, WorkerFaust
from rollwatch.agents.fetch import UndecodableBatch, fetch_skipping, locate
from rollwatch.kafka import client_options, ensure_topics
from rollwatch.settings import Settings
from tests.rawbatch import corrupt_snappy_batch, produce_raw

pytestmark = pytest.mark.integration


async def _fill(settings: Settings) -> None:
    """Partition 0: good 0-2, a corrupt batch of 3 records (3-5), good 6-8; partition 1: one good record."""
    await ensure_topics(settings)
    topic = settings.topic_telemetry
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=0)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, b"before-%d" % i, key=b"k", partition=0)
        await produce_raw(settings, topic, 0, corrupt_snappy_batch(b"k", records=3))
        for i in range(3):
            await producer.send_and_wait(topic, b"after-%d" % i, key=b"k", partition=0)
        await producer.send_and_wait(topic, b"other", key=b"o", partition=1)
    finally:
        await producer.stop()


async def _consumer(settings: Settings) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    tps = [TopicPartition(settings.topic_telemetry, p) for p in (0, 1)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer, tps


async def test_every_good_record_is_returned_once_and_the_bad_batch_is_stepped_over_whole(
    kafka_settings: Settings,
) -> None:
    await _fill(kafka_settings)
    consumer, tps = await _consumer(kafka_settings)
    skipped: list[UndecodableBatch] = []
    got: dict[int, list[tuple[int, bytes]]] = {0: [], 1: []}
    try:
        fetcher: Any = consumer._fetcher  # what faust's AIOKafkaConsumerThread._fetch_records calls
        for _ in range(50):
            batches = await fetch_skipping(
                consumer, lambda: fetcher.fetched_records(set(tps), timeout=0.5, max_records=None), skipped.append
            )
            for tp, records in batches.items():
                got[tp.partition].extend((r.offset, r.value) for r in records)
            if len(got[0]) >= 6 and got[1]:
                break
        assert await consumer.position(tps[0]) == 9
    finally:
        await consumer.stop()
    assert got[0] == [(i, b"before-%d" % i) for i in range(3)] + [(6 + i, b"after-%d" % i) for i in range(3)]
    assert got[1] == [(0, b"other")]
    assert len(skipped) == 1
    (bad,) = skipped
    assert (bad.topic, bad.partition, bad.first_offset, bad.next_offset) == (kafka_settings.topic_telemetry, 0, 3, 6)
    assert "DecompressionError" in bad.error


async def test_without_the_skip_the_same_fetch_fails_every_time(
    kafka_settings: Settings,
) -> None:
    """The fault is real: plain aiokafka raises on the batch at every call (what stopped the worker)."""
    await _fill(kafka_settings)
    consumer, tps = await _consumer(kafka_settings)
    failures: list[BaseException] = []
    seen: list[int] = []
    try:
        for _ in range(4):
            try:
                for records in (await consumer.getmany(*tps, timeout_ms=500)).values():
                    seen.extend(r.offset for r in records if r.topic == tps[0].topic and r.partition == 0)
            except Exception as exc:
                failures.append(exc)
        assert await consumer.position(tps[0]) <= 3
    finally:
        await consumer.stop()
    assert len(failures) >= 3
    located = [locate(exc) for exc in failures]
    assert all(found is not None and found.tp == tps[0] and found.next == 6 for found in located)
    assert not [offset for offset in seen if offset >= 3]


def test_an_error_raised_outside_record_unpacking_is_not_taken_for_a_bad_batch() -> None:
    try:
        raise RuntimeError("broker said no")
    except RuntimeError as exc:
        assert locate(exc) is None


async def test_the_worker_app_reads_through_the_skipping_consumer_thread() -> None:
    """faust still builds its consumer from the overridden factories, and calls what is overridden."""
    app = WorkerFaust("rw-shape", broker="kafka://127.0.0.1:1", autodiscover=False)
    assert type(app.transport) is SkippingTransport
    assert type(app.consumer) is SkippingConsumer
    assert type(app.consumer._thread) is SkippingConsumerThread
    assert "_new_consumer_thread" in vars(Consumer)
    upstream = inspect.signature(AIOKafkaConsumerThread._fetch_records)
    assert list(upstream.parameters) == ["self", "consumer", "active_partitions", "timeout", "max_records"]
    assert "self._fetch_records" in inspect.getsource(AIOKafkaConsumerThread.getmany)
