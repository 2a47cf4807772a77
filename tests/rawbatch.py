"""Record batches nobody can decode, written to the broker as raw bytes (issue 15).

The batch is a v2 record batch whose attributes claim snappy over bytes that are not
snappy, with a correct CRC, so only decompression fails. It is sent with a raw
ProduceRequest, since no client would write it.
"""

from __future__ import annotations

import struct

from aiokafka import AIOKafkaClient, TopicPartition
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c

from rollwatch.kafka import client_options
from rollwatch.settings import Settings

__all__ = ["corrupt_snappy_batch", "produce_raw"]

_CRC_OFFSET = 17  # base offset i64, length i32, leader epoch i32, magic i8
_ATTRIBUTES_OFFSET = 21  # then crc u32; the CRC-32C covers attributes to the end


def corrupt_snappy_batch(key: bytes, records: int = 1) -> bytes:
    """``records`` records flagged snappy over bytes that are not snappy; the CRC is right."""
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    for i in range(records):
        builder.append(i, timestamp=None, key=key, value=b"not snappy at all " * 8, headers=[])
    batch = bytearray(builder.build())
    (attributes,) = struct.unpack_from(">h", batch, _ATTRIBUTES_OFFSET)
    struct.pack_into(">h", batch, _ATTRIBUTES_OFFSET, attributes | 2)  # codec 2: snappy
    struct.pack_into(">I", batch, _CRC_OFFSET, calc_crc32c(bytes(batch[_ATTRIBUTES_OFFSET:])))
    return bytes(batch)


async def produce_raw(settings: Settings, topic: str, partition: int, batch: bytes) -> None:
    client = AIOKafkaClient(**client_options(settings))
    await client.bootstrap()
    try:
        await client._metadata_update(client.cluster, [topic])
        leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        response = await client.send(leader, ProduceRequest(None, -1, 5000, [(topic, [(partition, batch)])]))
        ((_, ((_, error, *_),)),) = response.topics
        assert error == 0, response
    finally:
        await client.close()
