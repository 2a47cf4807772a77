"""``rollwatch record``: the telemetry topic (or a time range of it) to the JSONL file ``replay`` reads.

The offline canary replays yesterday's production traffic through a ticket's gates;
this writes that traffic down. It reads what the topic holds when the command starts
(every partition to its end offset at that moment), keeps messages whose Kafka timestamp
falls in ``[since, until)`` and, optionally, whose key is one of the given workflows, and
writes each message (an event or a batch array) on one line, byte for byte (a message
that is invalid stays invalid, so replay counts it as the worker would have). Only a
message spread over several lines is re-encoded, and skipped if it is not JSON.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from rollwatch.kafka import client_options, unreachable
from rollwatch.ops.errors import OpsError
from rollwatch.ops.tail import StartAt, seek_start
from rollwatch.settings import Settings

__all__ = ["Recording", "check_output", "record_telemetry"]


@dataclass(slots=True)
class Recording:
    """What was read and written."""

    messages: int = 0
    """Messages read from the topic (in the time range)."""
    written: int = 0
    skipped: int = 0
    """Tombstones, and messages spread over several lines that are not JSON."""
    skipped_workflow: int = 0
    first_ms: int | None = None
    last_ms: int | None = None


async def record_telemetry(
    settings: Settings,
    out: IO[bytes],
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    workflows: frozenset[str] = frozenset(),
    progress: Callable[[int, int], None] | None = None,
) -> Recording:
    """Write the telemetry topic's messages in range to ``out``; ``progress(done, total)`` per fetch."""
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=None, enable_auto_commit=False, client_id="rollwatch-record"
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise unreachable(settings, exc, "to read the telemetry topic") from exc
    result = Recording()
    try:
        topic = settings.topic_telemetry
        if topic not in await consumer.topics():
            raise OpsError(f"no topic {topic} on {settings.bootstrap_servers}: nothing to record")
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        await seek_start(consumer, StartAt("beginning") if since_ms is None else StartAt.since(since_ms))
        ends = await consumer.end_offsets(parts)
        starts = {tp: await consumer.position(tp) for tp in parts}
        total = sum(max(0, ends[tp] - starts[tp]) for tp in parts)
        done = 0
        active = {tp for tp in parts if starts[tp] < ends[tp]}
        while active:
            fetched = await consumer.getmany(*active, timeout_ms=500)
            for tp, messages in fetched.items():
                for m in messages:
                    if m.offset >= ends[tp]:
                        break
                    done += 1
                    _keep(m.key, m.value, m.timestamp, since_ms, until_ms, workflows, out, result)
            for tp in list(active):
                if await consumer.position(tp) >= ends[tp]:
                    active.discard(tp)
            if progress is not None:
                progress(min(done, total), total)
    finally:
        with contextlib.suppress(KafkaError):
            await consumer.stop()
    return result


def _keep(
    key: bytes | None,
    value: bytes | None,
    timestamp_ms: int,
    since_ms: int | None,
    until_ms: int | None,
    workflows: frozenset[str],
    out: IO[bytes],
    result: Recording,
) -> None:
    if (since_ms is not None and timestamp_ms < since_ms) or (until_ms is not None and timestamp_ms >= until_ms):
        return
    result.messages += 1
    if workflows and (key or b"").decode("utf-8", "replace") not in workflows:
        result.skipped_workflow += 1
        return
    if value is None:
        result.skipped += 1  # a tombstone: nothing to replay
        return
    line = value
    if b"\n" in value or b"\r" in value:
        try:
            # One line per message (replay reads JSONL): pretty-printed JSON is re-encoded.
            line = orjson.dumps(orjson.loads(value))
        except (orjson.JSONDecodeError, TypeError):
            result.skipped += 1
            return
    out.write(line + b"\n")
    result.written += 1
    result.first_ms = timestamp_ms if result.first_ms is None else min(result.first_ms, timestamp_ms)
    result.last_ms = timestamp_ms if result.last_ms is None else max(result.last_ms, timestamp_ms)


def check_output(path: Path, force: bool) -> None:
    """Refuse to overwrite a file unless asked, and a path in a missing folder."""
    if not path.parent.is_dir():
        raise OpsError(f"{path}: the folder {path.parent} does not exist")
    if path.exists() and not force:
        raise OpsError(f"{path} exists: pass --force to overwrite it")
