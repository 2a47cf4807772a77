"""A live worker steps over record batches nobody can decode, and so does its successor (issue 15).

The batches are real bytes on the embedded broker (:mod:`tests.rawbatch`: records flagged
snappy over bytes that are not snappy, valid CRC): three records between good telemetry
on the workflow's partition, and one on every partition of the releases and control
topics, which the worker tails outside faust (a newer ticket after it must still arrive).
Before, faust's drain loop died on ``DecompressionError`` and a restarted worker died again
on the same batch; the releases feed retried the batch forever. Offsets are held
uncommitted (long commit interval, then SIGKILL), so the second worker reads the bad batch
again: the restart path is exercised, not assumed.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rollwatch.kafka import client_options, ensure_topics
from rollwatch.settings import Settings
from tests.agents.conftest import Spawn
from tests.agents.fake_engine import ticket
from tests.agents.harness import call, produce, produce_events, read_topic, wait_until
from tests.rawbatch import corrupt_snappy_batch, produce_raw

pytestmark = pytest.mark.integration

WF = "wf-corrupt"
BAD_RECORDS = 3


def errors(status: dict[str, Any] | None) -> int:
    if not status or WF not in status["workflows"]:
        return -1
    return int(status["workflows"][WF]["engine"]["counts"].get("candidate", {}).get("errors", 0))


def revision(status: dict[str, Any] | None) -> int:
    if not status or WF not in status["workflows"]:
        return -1
    return int(status["workflows"][WF]["engine"]["ticket"]["revision"])


def skipped(status: dict[str, Any] | None) -> int:
    return int(status["undecodable"]["batches"]) if status else -1


async def committed(settings: Settings, group: str, partition: int) -> int | None:
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(settings.topic_telemetry, partition))
        return offset
    finally:
        await consumer.stop()


async def errors_in(settings: Settings, prefix: str, count: int) -> None:
    await produce_events(settings, [[call(f"{prefix}{i}", WF, status="error")] for i in range(count)])


async def test_a_worker_steps_over_an_undecodable_batch_counts_what_follows_and_survives_a_restart(
    kafka_settings: Settings, spawn: Spawn, group: str
) -> None:
    await ensure_topics(kafka_settings)
    await produce(kafka_settings, kafka_settings.topic_releases, [(WF.encode(), ticket(max_candidate_errors=10_000))])
    first = spawn("w1", "--commit-interval", "600")
    await wait_until(first.ready, what="first worker ready", timeout=40)

    await errors_in(kafka_settings, "a", 5)
    status = await wait_until(lambda: (s := first.status()) and errors(s) == 5 and s, what="5 good events")
    partition = int(status["workflows"][WF]["partition"])
    bad_at = int(status["workflows"][WF]["applied"][str(partition)]) + 1  # the next offset of that partition
    await produce_raw(
        kafka_settings, kafka_settings.topic_telemetry, partition, corrupt_snappy_batch(WF.encode(), BAD_RECORDS)
    )
    await errors_in(kafka_settings, "b", 5)
    await wait_until(lambda: errors(first.status()) == 10, what="the 5 events after the bad batch")
    first.check_alive()
    status = first.status()
    assert status is not None and skipped(status) == 1
    (batch,) = status["undecodable"]["last"]
    assert (batch["topic"], batch["partition"]) == (kafka_settings.topic_telemetry, partition)
    assert (batch["first_offset"], batch["next_offset"]) == (bad_at, bad_at + BAD_RECORDS)
    found = re.search(
        r'rollwatch_undecodable_batches_total\{topic="' + re.escape(kafka_settings.topic_telemetry) + r'"\} (\S+)',
        first.metrics(),
    )
    assert found is not None and float(found.group(1)) == 1.0
    letters = [orjson.loads(r.value) for r in await read_topic(kafka_settings, kafka_settings.topic_deadletter)]
    assert len(letters) == 1
    (letter,) = letters
    assert letter["source"] == {
        "topic": kafka_settings.topic_telemetry,
        "partition": partition,
        "offset": bad_at,
        "index": None,
    }
    assert letter["reason"].startswith(f"undecodable record batch (offsets {bad_at}-{bad_at + BAD_RECORDS - 1})")
    assert letter["raw"] is None  # aiokafka's C reader does not expose the batch's bytes
    lines = [line for line in first.tail(400).splitlines() if "undecodable record batch" in line]
    assert len(lines) == 1, lines

    # The releases and control feeds: a bad batch on each partition, then a new ticket revision.
    tails = [(kafka_settings.topic_releases, p) for p in range(kafka_settings.control_partitions)]
    tails += [(kafka_settings.topic_control, p) for p in range(kafka_settings.control_partitions)]
    for topic, p in tails:
        await produce_raw(kafka_settings, topic, p, corrupt_snappy_batch(WF.encode()))
    await produce(kafka_settings, kafka_settings.topic_releases, [(WF.encode(), ticket("rel-1", 2, 10_000))])
    await wait_until(lambda: revision(first.status()) == 2, what="the ticket after the bad releases batch")
    await wait_until(lambda: skipped(first.status()) == 1 + len(tails), what="every bad batch counted")
    status = first.status()
    assert status is not None
    assert sorted((b["topic"], b["partition"]) for b in status["undecodable"]["last"][1:]) == sorted(tails)
    assert "Drain messages raised" not in first.tail(400)

    # Crash with the offsets still uncommitted: the next worker reads the bad batch again.
    first.kill()
    assert (await committed(kafka_settings, group, partition) or 0) <= bad_at
    second = spawn("w2")
    await wait_until(second.ready, what="second worker ready", timeout=40)
    await errors_in(kafka_settings, "c", 2)
    await wait_until(lambda: errors(second.status()) == 12, what="2 more events after the restart")
    status = second.status()
    assert status is not None and skipped(status) == 1 + len(tails)
    assert revision(status) == 2
    assert status["workflows"][WF]["engine"]["duplicates"] == 0
    # It read the batch again (during recovery and after the rewind of uncommitted offsets):
    # one count and one log line per process; a second dead letter, at least once like the rest.
    assert len([line for line in second.tail(400).splitlines() if "stepped over an undecodable" in line]) == 1 + len(
        tails
    )
    assert "Drain messages raised" not in second.tail(400)
    letters = [orjson.loads(r.value) for r in await read_topic(kafka_settings, kafka_settings.topic_deadletter)]
    assert [letter["source"]["offset"] for letter in letters] == [bad_at, bad_at]  # tails: not dead-lettered
    second.check_alive()
