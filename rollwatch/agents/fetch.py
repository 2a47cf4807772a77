"""Step over a record batch the worker's consumer cannot decode, instead of dying on it.

aiokafka decodes a fetched record batch lazily, inside ``Fetcher.fetched_records``. A
batch it cannot read (bytes that are not what their codec flag says, a bad CRC, a codec
it lacks) raises there, on every call, because the partition's position never moves past
it. Worse, the same exception discards what that call had already decoded: records of
other partitions (whose positions have moved on) and the good records before the bad
batch in the failing partition. faust's ``_drain_messages`` logs the exception and the
worker stops; a restarted worker stops again on the same batch: one corrupt producer
halts monitoring of every workflow on the partition, forever.

The hook for faust is a subclass chain, not a patch (:mod:`rollwatch.agents.consumer`):
the worker's faust consumer thread sends its one call into the aiokafka fetcher through
:func:`fetch_skipping`; the plain aiokafka consumers the worker runs beside faust (the
releases and control feeds, the OTLP bridge) wrap their ``getmany`` in it. On an
exception raised while a batch was being unpacked, :func:`locate` reads from the
traceback where it happened:
the partition and batch (``PartitionRecords._unpack_records``: ``tp``, ``next_batch``),
the good records of that partition decoded before it (``FetchResult.getall``:
``ret_list``) and the records of other partitions already drained (``fetched_records``:
``drained``). Those are returned, the partition is sought to the batch's next offset, and
``on_skip`` hears of the batch. faust's own gap tracking then lets commits move past it.

Reading frame locals is what makes this exact (nothing lost, one skip per batch, the
batch's real extent) without copying aiokafka's unpacking loop; it depends on aiokafka's
internal names, so ``tests/agents/test_fetch.py`` drives the real library into the fault
and fails if any of those names or frames change. Should they change, :func:`locate`
finds nothing (a frame without the names it expects counts as a change) and the exception
propagates as before (the worker stops; nothing is skipped or lost silently). The batch's
raw bytes are not available: aiokafka's C record reader does not expose its buffer, so the
dead letter names topic, partition and offsets instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.fetcher import Fetcher, FetchResult, PartitionRecords

__all__ = ["UndecodableBatch", "fetch_skipping", "locate"]

_UNPACK: CodeType = PartitionRecords._unpack_records.__code__
_GETALL: CodeType = FetchResult.getall.__code__
_FETCHED: CodeType = Fetcher.fetched_records.__code__


@dataclass(frozen=True, slots=True)
class UndecodableBatch:
    """One record batch stepped over: where it was and why it could not be read."""

    topic: str
    partition: int
    first_offset: int
    """The batch's base offset (or the first offset the consumer had not read, if lower)."""
    next_offset: int
    """Where the consumer resumes: the offset after the batch's last record."""
    error: str


@dataclass(slots=True)
class _Failure:
    tp: TopicPartition
    first: int
    next: int
    decoded: list[Any]
    drained: dict[TopicPartition, list[Any]]


def locate(exc: BaseException) -> _Failure | None:
    """Where in aiokafka's unpacking ``exc`` was raised; None when it was not raised there."""
    tb: TracebackType | None = exc.__traceback__
    unpack: Mapping[str, Any] | None = None
    decoded: list[Any] = []
    drained: dict[TopicPartition, list[Any]] = {}
    while tb is not None:
        code, local = tb.tb_frame.f_code, tb.tb_frame.f_locals
        if code is _FETCHED:
            if "drained" not in local:
                return None
            drained = dict(local["drained"])
        elif code is _GETALL:
            if "ret_list" not in local:
                return None
            decoded = list(local["ret_list"])
        elif code is _UNPACK:
            unpack = local
        tb = tb.tb_next
    if unpack is None or not isinstance(unpack.get("tp"), TopicPartition) or "self" not in unpack:
        return None
    tp: TopicPartition = unpack["tp"]
    records = unpack.get("self")
    position = int(getattr(records, "next_fetch_offset", -1))
    batch = unpack.get("next_batch")
    base = getattr(batch, "base_offset", None)
    after = getattr(batch, "next_offset", None)
    if position < 0:
        return None
    if not isinstance(base, int) or not isinstance(after, int) or after <= position:
        # The batch header itself was unreadable (``next_batch`` is unbound or the previous,
        # fully read batch): step one offset, which always makes progress.
        return _Failure(tp, position, position + 1, decoded, drained)
    return _Failure(tp, min(base, position), after, decoded, drained)


async def fetch_skipping(
    consumer: AIOKafkaConsumer,
    fetch: Callable[[], Awaitable[Mapping[TopicPartition, list[Any]]]],
    on_skip: Callable[[UndecodableBatch], None],
) -> dict[TopicPartition, list[Any]]:
    """``fetch()`` (a call into ``consumer``'s fetcher), stepping over a batch it cannot decode.

    Returns what ``fetch()`` returns; after a decode failure, the records that call had
    decoded before it (nothing is lost), with the failing partition sought past the batch.
    """
    try:
        return dict(await fetch())
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        failure = locate(exc)
        if failure is None:
            raise
        error = f"{type(exc).__name__}: {exc}"
    consumer.seek(failure.tp, failure.next)
    on_skip(UndecodableBatch(failure.tp.topic, failure.tp.partition, failure.first, failure.next, error))
    out = failure.drained
    if failure.decoded:
        out[failure.tp] = failure.decoded
    return out
