"""Telemetry from librdkafka (confluent-kafka's wheel, a producer rollwatch did not write).

snappy, lz4 and zstd batches once ended the worker with ``UnsupportedCodecError`` (issue 15);
now every readable event counts, garbage among them is dead-lettered, and records keyed
onto a partition that murmur2 would not pick are counted by ``rollwatch_telemetry_misrouted``.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings
from tests.agents.conftest import Spawn
from tests.agents.fake_engine import ticket
from tests.agents.harness import produce, read_topic, wait_until

pytestmark = pytest.mark.integration

CODECS = ("snappy", "lz4", "zstd")
PER_CODEC = 20


def _event(i: int, workflow: str) -> dict[str, Any]:
    return {
        "type": "call", "event_id": f"{workflow}-{i}", "ts": time.time(), "workflow": workflow, "route": "r",
        "latency_ms": 10.0, "status": "error", "schema_valid": True, "safety_blocked": False, "task_success": False,
        "cost_usd": 0.0, "arm": "candidate",
    }  # fmt: skip


def _produce(settings: Settings, codec: str | None, messages: list[tuple[bytes, bytes, int | None]]) -> list[int]:
    """Send with librdkafka, Java-compatible partitioning; the partition of each delivery."""
    conf: dict[str, str | int] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "partitioner": "murmur2_random",
        "linger.ms": 50,
    }
    if codec is not None:
        conf["compression.type"] = codec
    producer = Producer(conf)
    partitions: list[int] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        partitions.append(msg.partition())

    for key, value, partition in messages:
        topic = settings.topic_telemetry
        if partition is None:
            producer.produce(topic, value=value, key=key, on_delivery=delivered)
        else:
            producer.produce(topic, value=value, key=key, partition=partition, on_delivery=delivered)
    assert producer.flush(30) == 0
    assert len(partitions) == len(messages)
    return partitions


def _errors(status: dict[str, Any] | None, workflow: str) -> int:
    if not status or workflow not in status["workflows"]:
        return -1
    return int(status["workflows"][workflow]["engine"]["counts"].get("candidate", {}).get("errors", 0))


async def test_snappy_lz4_zstd_batches_count_garbage_is_dead_lettered_and_misrouting_is_counted(
    kafka_settings: Settings, spawn: Spawn
) -> None:
    await ensure_topics(kafka_settings)
    workflows = [f"wf-{codec}" for codec in CODECS] + ["wf-moved"]
    await produce(kafka_settings, kafka_settings.topic_releases, [(w.encode(), ticket(max_candidate_errors=10_000))
                                                                  for w in workflows])  # fmt: skip
    garbage = b"\x00\x01garbage \xff not json"
    for codec in CODECS:
        wf = f"wf-{codec}"
        events = [_event(i, wf) for i in range(PER_CODEC)]
        batches = [orjson.dumps(events[i : i + 5]) for i in range(0, PER_CODEC, 5)]
        none: int | None = None
        messages = [(wf.encode(), b, none) for b in [*batches[:2], garbage, *batches[2:]]]
        await asyncio.to_thread(_produce, kafka_settings, codec, messages)
    first: list[tuple[bytes, bytes, int | None]] = [(b"wf-moved", orjson.dumps(_event(0, "wf-moved")), None)]
    (home,) = await asyncio.to_thread(_produce, kafka_settings, "zstd", first)
    wrong = (home + 1) % kafka_settings.telemetry_partitions
    moved: list[tuple[bytes, bytes, int | None]] = [
        (b"wf-moved", orjson.dumps(_event(i, "wf-moved")), wrong) for i in range(1, 4)
    ]
    await asyncio.to_thread(_produce, kafka_settings, "lz4", moved)

    worker = spawn("w1")
    await wait_until(worker.ready, what="worker ready", timeout=40)
    for codec in CODECS:
        await wait_until(lambda c=codec: _errors(worker.status(), f"wf-{c}") == PER_CODEC, what=f"{codec} events")  # type: ignore[misc]
    letters = [
        orjson.loads(r.value) for r in await read_topic(kafka_settings, kafka_settings.topic_deadletter, expect=3)
    ]
    garbage_letters = [x for x in letters if x["source"]["topic"] == kafka_settings.topic_telemetry]
    assert len(garbage_letters) == len(CODECS)
    assert all(x["raw_encoding"] == "base64" for x in garbage_letters)
    await wait_until(lambda: "wf-moved" in (worker.metrics() or ""), what="misrouted metric")
    found = re.search(r'rollwatch_telemetry_misrouted_total\{workflow="wf-moved"\} (\S+)', worker.metrics())
    assert found is not None and float(found.group(1)) == 3.0  # only the three sent to the wrong partition
    assert not re.search(r'rollwatch_telemetry_misrouted_total\{workflow="wf-(snappy|lz4|zstd)"\}', worker.metrics())
    worker.check_alive()
