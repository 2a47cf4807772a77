"""The releases feed: every worker reads the *whole* releases topic, outside the consumer group.

Why not a faust agent: an agent is a group member, so each worker would see only some
releases partitions, and those do not line up with the telemetry partitions it owns
(different topics, different partition counts, compaction). Why not a GlobalTable: its
recovery blocks worker start-up and it offers no hook to act on a change. A group-less
aiokafka consumer that assigns itself every partition, reads from the beginning (the topic
is compacted, so that is the latest ticket per workflow) and keeps tailing is small and
obviously correct: each worker keeps all tickets in a dict and installs the ones of the
workflows it owns; a worker that gains a workflow in a rebalance already has its ticket.
A record batch it cannot decode is stepped over and reported (:mod:`rollwatch.agents.fetch`),
or the feed would retry it forever and never read the tickets after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from rollwatch.agents.fetch import UndecodableBatch, fetch_skipping
from rollwatch.agents.records import SourceRecord
from rollwatch.kafka import client_options
from rollwatch.settings import Settings

__all__ = ["TicketFeed"]

log = logging.getLogger(__name__)


class TicketFeed:
    """Tails the releases topic forever; ``ready`` is set once the backlog seen at start is read."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str = "rollwatch-tickets",
        poll_ms: int = 250,
        on_undecodable: Callable[[UndecodableBatch], None] | None = None,
    ) -> None:
        self._settings = settings
        self.on_undecodable = on_undecodable
        self._topic = settings.topic_releases
        self._client_id = client_id
        self._poll_ms = poll_ms
        self._next: dict[int, int] = {}
        self.ready = asyncio.Event()

    async def run(self, on_record: Callable[[SourceRecord], Awaitable[None]]) -> None:
        """Consume until cancelled, reconnecting with back-off: a broken feed must not stop the worker."""
        delay = 0.5
        while True:
            try:
                await self._consume(on_record)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("releases feed on %s failed; retrying in %.1fs", self._topic, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _consume(self, on_record: Callable[[SourceRecord], Awaitable[None]]) -> None:
        consumer = AIOKafkaConsumer(
            **client_options(self._settings),
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            tps = [TopicPartition(self._topic, p) for p in partitions]
            consumer.assign(tps)
            for tp in tps:
                if tp.partition in self._next:
                    consumer.seek(tp, self._next[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
            while True:
                # Tansu's end offsets can stop short of the last record batch (base offset + 1);
                # fetches return whole batches, so once a fetch has been consumed the position
                # is past the true end and this check cannot fire early.
                if not self.ready.is_set() and all(self._next.get(tp.partition, 0) >= end for tp, end in ends.items()):
                    log.info("releases feed caught up: %d partitions of %s", len(tps), self._topic)
                    self.ready.set()
                batches = await fetch_skipping(
                    consumer, lambda: consumer.getmany(timeout_ms=self._poll_ms), self._undecodable
                )
                for tp, records in batches.items():
                    for record in records:
                        await on_record(SourceRecord(tp.topic, tp.partition, record.offset, record.key, record.value))
                        self._next[tp.partition] = record.offset + 1
                for tp in tps:
                    position = await consumer.position(tp)
                    highwater = consumer.highwater(tp)  # from fetch responses: exact, unlike end_offsets on Tansu
                    if highwater is not None and position > highwater:
                        # The log is shorter than what we read: the topic was recreated (an in-memory
                        # broker restarted empty). Read the new one from its start.
                        log.warning("releases partition %d restarted below our position; rereading it", tp.partition)
                        await consumer.seek_to_beginning(tp)
                        self._next[tp.partition] = 0
                        continue
                    # Compaction leaves gaps: the position, not the last record, says how far we are.
                    self._next[tp.partition] = max(self._next.get(tp.partition, 0), position)
        finally:
            await consumer.stop()

    def _undecodable(self, batch: UndecodableBatch) -> None:
        if self.on_undecodable is not None:
            self.on_undecodable(batch)
        else:
            log.warning("stepped over an undecodable record batch: %s", batch)

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[int]:
        while True:
            await consumer.topics()
            found = consumer.partitions_for_topic(self._topic)
            if found:
                return sorted(found)
            log.warning("releases topic %s does not exist yet; waiting", self._topic)
            await asyncio.sleep(1.0)
