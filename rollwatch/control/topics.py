"""Kafka helpers shared by the flag store, the gateway subscriber and the drill.

Consumers here never join a consumer group: partitions are assigned by hand and
positioned explicitly. Group joins are slow on the embedded broker and pointless for
a process that must see every partition of a small control topic anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CorruptRecordException, KafkaError, UnsupportedCodecError

from rollwatch.control.errors import ControlError
from rollwatch.control.state import WorkflowFlags, verified_state
from rollwatch.control.verify import TicketBook
from rollwatch.kafka import client_options
from rollwatch.settings import Settings
from rollwatch.tickets import TicketError
from rollwatch.trust import Keyring
from rollwatch.trust.releases import ReleaseRefused

__all__ = [
    "ResetWatch",
    "assigned",
    "close_clients",
    "getmany_skipping",
    "load_flag_states",
    "make_consumer",
    "partitions_of",
    "read_tickets",
    "read_to_end",
    "read_topic",
    "send_retrying",
]

log = logging.getLogger(__name__)


def make_consumer(settings: Settings, **extra: Any) -> AIOKafkaConsumer:
    """A consumer tuned for control traffic: small fetch waits, no auto-commit.

    A position that falls off the log (OFFSET_OUT_OF_RANGE: the topic was recreated or
    truncated) resets to the earliest offset, not the latest: re-reading commands costs a
    duplicate ack each (command ids make them no-ops, expired ones are refused), while
    skipping to the end would lose the commands published in between.
    """
    options = client_options(settings) | {
        "enable_auto_commit": False,
        "fetch_max_wait_ms": 50,
        "auto_offset_reset": "earliest",
    }
    return AIOKafkaConsumer(**(options | extra))


STOP_STEP_S = 15.0
"""How long each step of :func:`close_clients` may take before it is given up on (and logged)."""


async def close_clients(
    task: asyncio.Task[None] | None, consumer: AIOKafkaConsumer | None, producer: AIOKafkaProducer | None
) -> None:
    """Stop a consume loop and its clients in the one safe order: loop, consumer, producer.

    The loop may be mid-send, so it goes first; the producer goes last so acks the loop
    already queued are flushed. Each step is bounded by :data:`STOP_STEP_S`: a consumer
    that is being shut down must not hang its process (seen once in a test teardown, not
    reproduced); a step that overruns is logged with its name and the next one runs.
    """
    if task is not None:
        task.cancel()
        await _bounded("consume loop", task)
    if consumer is not None:
        await _bounded("consumer", asyncio.ensure_future(consumer.stop()))
    if producer is not None:
        await _bounded("producer", asyncio.ensure_future(producer.stop()))


async def _bounded(name: str, step: asyncio.Future[Any]) -> None:
    # asyncio.wait, not wait_for: wait_for would wait for a cancelled step to end, which a
    # step that swallows its cancellation never does.
    done, _ = await asyncio.wait({step}, timeout=STOP_STEP_S)
    if not done:
        step.cancel()
        log.error("stopping the %s took over %.0f s; went on without it", name, STOP_STEP_S)
        return
    if not step.cancelled():
        step.result()  # a step that failed raises here, as awaiting it did


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``; raises :class:`ControlError` when it does not exist."""
    await consumer.topics()  # refreshes metadata
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise ControlError(f"topic {topic!r} does not exist (run `rollwatch topics create`)")
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
            raise ControlError(f"could not read {behind[0].topic} to its end within {timeout_s:.0f}s")
        batches = await consumer.getmany(*behind, timeout_ms=200)
        for records in batches.values():
            for record in records:
                on_record(record)


@contextlib.asynccontextmanager
async def assigned(
    settings: Settings, topic: str, at: Literal["beginning", "end"] = "beginning"
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A started consumer holding every partition of ``topic``, at its beginning or its end; stopped after.

    "The end" is fixed on entry, so a tool can publish and then read what came after it.
    """
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topic)
        consumer.assign(tps)
        if at == "end":
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
        else:
            await consumer.seek_to_beginning(*tps)
        yield consumer, tps
    finally:
        await consumer.stop()


async def read_topic(settings: Settings, topic: str, on_record: Callable[[Any], None]) -> None:
    """Feed every record of ``topic``, from its beginning to its end as of now, to ``on_record``."""
    async with assigned(settings, topic) as (consumer, tps):
        await read_to_end(consumer, tps, on_record)


async def read_tickets(settings: Settings, keyring: Keyring) -> TicketBook:
    """The tickets in force on the releases topic now, verified as every consumer verifies them."""
    book = TicketBook()

    def take(record: Any) -> None:
        # A ticket the consumers refuse is not honoured here either: the previous one stays.
        with contextlib.suppress(TicketError, ReleaseRefused):
            book.load_record(record.key, record.value, f"{record.topic}@{record.offset}", keyring)

    await read_topic(settings, settings.topic_releases, take)
    return book


async def load_flag_states(
    settings: Settings,
    keyring: Keyring | None,
    on_refused: Callable[[Any, str, str], None] | None = None,
) -> list[WorkflowFlags]:
    """Every workflow's latest *verified* state on the compacted flags topic, read now.

    A record that is unreadable, unsigned (a tombstone too) or signed by a key not trusted
    for flags is skipped (``on_refused(record, code, detail)``) and does not replace the
    verified state before it. ``keyring=None`` reads without verifying (tools that only display).
    """
    latest: dict[str, WorkflowFlags] = {}

    def take(record: Any) -> None:
        state = verified_state(record.value, keyring)
        if isinstance(state, tuple):
            log.error("flags topic %s@%d: skipped: %s: %s", record.partition, record.offset, *state)
            if on_refused is not None:
                on_refused(record, *state)
        else:
            latest[state.workflow] = state

    await read_topic(settings, settings.topic_flags, take)
    return list(latest.values())


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


class ResetWatch:
    """Notices partitions whose log end went backwards and re-reads them from their beginning.

    A log end never moves back on a healthy partition. It does when the topic was
    deleted and recreated, or when a broker that keeps its log in memory (the embedded
    one) restarted empty. The consumer's position then lies beyond the new end, and a
    broker that answers such a fetch with nothing instead of OFFSET_OUT_OF_RANGE (Tansu
    does) leaves the consumer waiting there while new commands land below it, unseen.
    ``check()`` is cheap (one ListOffsets request at most every ``every_s``) and is meant
    for the idle path of a consume loop; it never raises, since the broker may be down.
    A command that lands on a reset partition before the next check, and takes the log
    end back to the old one, goes unnoticed: a persistent broker does not have that gap.
    """

    def __init__(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], every_s: float = 1.0) -> None:
        self.consumer = consumer
        self.tps = list(tps)
        self.every = every_s
        self.rewinds = 0
        self.rewound: set[TopicPartition] = set()
        self._ends: dict[TopicPartition, int] = {}
        self._next = 0.0

    async def check(self) -> list[TopicPartition]:
        """The partitions just rewound (usually none)."""
        now = time.monotonic()
        if now < self._next or not self.tps:
            return []
        self._next = now + self.every
        try:
            ends: dict[TopicPartition, int] = await asyncio.wait_for(
                self.consumer.end_offsets(self.tps), timeout=max(self.every, 1.0)
            )
        except Exception:  # broker down or topic missing for now: try again later
            return []
        reset = [tp for tp in self.tps if tp in ends and await self._went_back(tp, ends[tp])]
        self._ends.update(ends)
        if reset:
            log.warning("log end went backwards on %s (topic recreated or broker reset): re-reading", reset)
            try:
                await self.consumer.seek_to_beginning(*reset)
            except Exception:
                log.warning("cannot rewind %s; will retry", reset, exc_info=True)
                for tp in reset:
                    self._ends[tp] = ends[tp] + 1  # still "backwards" next time, so it is retried
                return []
            self.rewinds += len(reset)
            self.rewound.update(reset)
        return reset

    async def _went_back(self, tp: TopicPartition, end: int) -> bool:
        """Below the end seen before, or empty although we have read records from it.

        Not simply "below our position": Tansu reports the high watermark as the base
        offset of the last batch plus one, which can lie below a position that is fine.
        An empty log is unambiguous, and covers a reset the previous checks did not see.
        """
        if end < self._ends.get(tp, 0):
            return True
        if end > 0:
            return False
        try:
            return bool(await asyncio.wait_for(self.consumer.position(tp), timeout=1.0) > 0)
        except Exception:
            return False


def _undecodable(exc: BaseException) -> bool:
    """A batch the client cannot read (codec, CRC, decompression), as opposed to a fetch that failed."""
    return isinstance(exc, UnsupportedCodecError | CorruptRecordException) or not isinstance(exc, KafkaError)


async def getmany_skipping(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    timeout_ms: int,
    on_skip: Callable[[TopicPartition, int, BaseException], None],
) -> dict[TopicPartition, list[Any]]:
    """``consumer.getmany`` that skips a record batch it cannot decode instead of failing forever.

    aiokafka raises the same error at every call while the position stays on a batch it
    cannot decode (a codec it lacks, a bad CRC, corrupt compressed bytes), and records of
    other partitions drained in that call are lost with their positions already moved on.
    So: remember every position, and on such an error go back to them and read partition by
    partition; the partition that still fails moves one offset on (``on_skip`` counts it;
    its bytes are not available to dead-letter). Transient ``KafkaError`` still propagates.
    """
    before = {tp: await consumer.position(tp) for tp in tps}
    try:
        batches: dict[TopicPartition, list[Any]] = await consumer.getmany(timeout_ms=timeout_ms)
        return batches
    except Exception as exc:
        if not _undecodable(exc):
            raise
        log.warning("undecodable record batch (%s: %s); reading partition by partition", type(exc).__name__, exc)
    for tp, offset in before.items():
        consumer.seek(tp, offset)
    out: dict[TopicPartition, list[Any]] = {}
    for tp in tps:
        try:
            out.update(await consumer.getmany(tp, timeout_ms=timeout_ms))
        except Exception as exc:
            if not _undecodable(exc):
                raise
            position = await consumer.position(tp)
            consumer.seek(tp, position + 1)
            on_skip(tp, position, exc)
    return out
