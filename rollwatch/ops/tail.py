"""``rollwatch tail``: follow the control plane (commands, optionally acks and dead letters).

The reader assigns itself every partition instead of joining a consumer group: tailing
must never take partitions away from, or commit offsets for, the flag stores and
gateways that act on commands. It starts at the end by default (what happens next), at
the beginning, or at a moment (``--since``), which it finds with the broker's offset
lookup by time and also enforces record by record, so a broker without that lookup
only costs reading more.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from rollwatch.kafka import client_options, unreachable
from rollwatch.ops.errors import OpsError
from rollwatch.ops.records import Role, TailFilter, TailRecord, format_line, parse_record, record_json
from rollwatch.settings import Settings
from rollwatch.tickets.durations import parse_duration

__all__ = ["StartAt", "parse_since", "read_records", "seek_start", "tail"]

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class StartAt:
    """Where reading starts: the current end, the beginning, or the first record at ``since_ms``."""

    mode: Literal["end", "beginning", "time"] = "end"
    since_ms: int | None = None

    @classmethod
    def since(cls, since_ms: int) -> StartAt:
        return cls("time", since_ms)


def parse_since(text: str, now_ms: int | None = None) -> int:
    """Epoch ms of ``--since``: a duration back from now (``15m``, ``2h``) or an RFC 3339 time."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    if not _TIMESTAMP.match(text):
        raise OpsError(f"--since {text!r}: expected a duration back from now (15m, 2h, 7d) or a time with an offset")
    moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    return int(moment.astimezone(UTC).timestamp() * 1000)


async def _assign(consumer: AIOKafkaConsumer, settings: Settings, roles: Sequence[Role]) -> dict[str, Role]:
    topics = settings.topics()
    by_topic = {topics[role]: role for role in roles}
    existing = await consumer.topics()
    missing = [f"{name} ({role})" for name, role in by_topic.items() if name not in existing]
    if missing:
        raise OpsError(f"no topic {', '.join(missing)} on {settings.bootstrap_servers}: run `rollwatch topics create`")
    assignment = [
        TopicPartition(name, partition)
        for name in by_topic
        for partition in sorted(consumer.partitions_for_topic(name) or ())
    ]
    consumer.assign(assignment)
    return by_topic


async def seek_start(consumer: AIOKafkaConsumer, start: StartAt) -> None:
    """Position every assigned partition at ``start`` (by time: the first record at or after it)."""
    partitions = sorted(consumer.assignment())
    if start.mode == "end":
        await consumer.seek_to_end(*partitions)
        return
    if start.mode == "beginning" or start.since_ms is None:
        await consumer.seek_to_beginning(*partitions)
        return
    try:
        found = await consumer.offsets_for_times({tp: start.since_ms for tp in partitions})
    except KafkaError:
        # The record-by-record check in read_records keeps --since exact either way.
        await consumer.seek_to_beginning(*partitions)
        return
    for tp in partitions:
        hit = found.get(tp)
        if hit is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, hit.offset)


async def read_records(
    settings: Settings,
    roles: Sequence[Role],
    start: StartAt,
    *,
    until_end: bool = False,
    stop: asyncio.Event | None = None,
    poll_ms: int = 300,
) -> AsyncGenerator[list[TailRecord], None]:
    """Batches of records of ``roles``' topics in timestamp order, following until ``stop``.

    With ``until_end`` it stops once it has read what the topics held when it started.
    """
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        client_id="rollwatch-tail",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise unreachable(settings, exc, "to read the topics") from exc
    try:
        by_topic = await _assign(consumer, settings, roles)
        await seek_start(consumer, start)
        partitions = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions) if until_end else {}
        while stop is None or not stop.is_set():
            if until_end:
                positions = [await consumer.position(tp) for tp in partitions]
                if all(pos >= ends[tp] for pos, tp in zip(positions, partitions, strict=True)):
                    return
            fetched = await consumer.getmany(timeout_ms=poll_ms)
            batch = [
                parse_record(by_topic[tp.topic], tp.topic, tp.partition, m.offset, m.timestamp, m.key, m.value)
                for tp, messages in fetched.items()
                for m in messages
                if start.since_ms is None or m.timestamp >= start.since_ms
            ]
            if batch:
                batch.sort(key=lambda r: (r.timestamp_ms, r.topic, r.partition, r.offset))
                yield batch
    finally:
        await consumer.stop()


async def tail(
    settings: Settings,
    out: Callable[[str], None],
    *,
    roles: Sequence[Role] = ("control",),
    start: StartAt = StartAt(),
    selection: TailFilter | None = None,
    as_json: bool = False,
    color: bool = False,
    until_end: bool = False,
    limit: int | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Print the records that pass ``selection``, one line each; how many were printed."""
    selection = selection or TailFilter()
    shown = 0
    # aclosing: leaving early (limit reached) must still stop the consumer now, not at GC.
    async with contextlib.aclosing(read_records(settings, roles, start, until_end=until_end, stop=stop)) as batches:
        async for batch in batches:
            for record in batch:
                if not selection.accept(record):
                    continue
                out(orjson.dumps(record_json(record)).decode() if as_json else format_line(record, color=color))
                shown += 1
                if limit is not None and shown >= limit:
                    return shown
    return shown
