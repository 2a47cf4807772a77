"""The ordered I/O around :class:`~rollwatch.agents.runtime.Runtime`: what is produced, awaited and acked when.

Commit order
============
The worker relies on this order, and enforces it itself rather than trusting faust's
flush (``ProducerBuffer.flush`` gives up after 0.1 s without progress, so
``consumer.commit()`` can run with records still buffered):

1. **outputs sent** - for each batch, dead letters and rollback commands are produced,
   and the commands are *awaited* (broker ack, ``acks=all``) before anything else: engine
   state records that a command was issued, so state must never be durable without the
   command;
2. **changelog written** - at a checkpoint, one state-table record per workflow whose
   state is ahead of its last checkpoint (``engine.to_bytes()`` plus the per-partition
   offsets it holds), sent straight to the aiokafka producer with an explicit partition
   and awaited together with the dead letters of the batches it covers (the last record
   of each changelog partition alone, see :meth:`Pipeline._write_checkpoints`);
3. **producer flushed** - implied by 1 and 2: every future is resolved before step 4;
4. **offsets committed** - batches are consumed with ``stream.noack_take`` and each event
   is acked only after 1-3 succeeded for a checkpoint taken after its batch was folded.
   faust commits acked offsets only (its committer, ``Consumer._commit_offsets``, also
   flushes the producer first). If the task is cancelled mid-batch the pipeline halts:
   nothing is acked or checkpointed any more by this process; a delivery failure stops
   the process (:func:`fail_stop`) so faust's shutdown cannot commit past it.

A checkpoint is taken after a batch that emitted a command, after a judge tick that
emitted one, when ``checkpoint_interval`` has passed since the last one, or when
``batch_max`` messages wait unacked; a timer takes it when no further batch comes
(also what lets faust's rebalance, which waits for every event to be acked, go on).
Writing every touched engine after every batch cost more than folding the batch: at
real-time rates it made the worker fall seconds behind its input.

A crash between 2 and 4 leaves state ahead of the committed offsets. The redelivered
messages are skipped per workflow using the offsets stored in the checkpoint (see
:mod:`rollwatch.agents.checkpoint`), so a count never goes up twice, and a command is
re-evaluated from identical state, so the engine's deterministic ``command_id`` is the
same: downstream may see the same id again after a crash, never a new one. A crash
between 1 and 2 replays from the previous checkpoint and re-derives the command with the
same id. Within one process a command id is published at most once (a bounded set).

The judge timer (every ``judge_interval`` seconds, wall clock) evaluates workflows so
that time-based gates fire when traffic stops: each tick continues a round over every
workflow for at most ``tick_budget`` seconds (at 10,000 workflows one round of ~1 ms
judgements would otherwise block the loop for 6-18 s per tick; workflows with traffic
are judged after each of their batches anyway). It follows the same order (command
delivered, then a checkpoint). One asyncio lock serialises batches, checkpoints, timer
ticks, ticket installs and rebalance callbacks, so two snapshots of one engine can never
reach the changelog out of order and no write can follow the loss of a partition.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from rollwatch.agents.changelog import ChangelogReset
from rollwatch.agents.deadletter import dead_letter
from rollwatch.agents.fetch import UndecodableBatch
from rollwatch.agents.options import WorkerOptions
from rollwatch.agents.records import BoundedSet, Outgoing, SourceRecord
from rollwatch.agents.runtime import Judgement, Runtime
from rollwatch.agents.tickets import TicketFeed

__all__ = ["EXIT_FAIL_STOP", "Pipeline", "fail_stop", "wall_ms"]

log = logging.getLogger(__name__)

EXIT_FAIL_STOP: Final = 70


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def fail_stop(reason: str, exc: BaseException | None = None) -> None:
    """Exit at once, committing nothing more: at-least-once survives a crash, not a bad commit."""
    log.critical("fail-stop: %s", reason, exc_info=exc)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(EXIT_FAIL_STOP)


def _timestamp_ms(seconds: float | None) -> int | None:
    return int(seconds * 1000) if seconds else None


class Pipeline:
    """Batches in, commands out at once, checkpoints and acks at the checkpoint cadence."""

    def __init__(self, app: Any, runtime: Runtime, feed: TicketFeed, options: WorkerOptions) -> None:
        self.app = app
        self.runtime = runtime
        self.feed = feed
        self.options = options
        self.lock = asyncio.Lock()
        self.stream: Any = None
        self.unacked: list[Any] = []
        """Events folded into engines whose checkpoint is not written yet (oldest first)."""
        self.pending: list[Any] = []
        """Dead-letter deliveries not yet awaited; awaited before the events they came from are acked."""
        self.last_checkpoint = 0.0
        self.halted = False
        """Set when a batch was interrupted: its effects are in memory but not all delivered."""
        self._flusher: asyncio.Future[None] | None = None
        self.changelog_resets: deque[ChangelogReset] = deque(maxlen=64)
        """Changelog partitions found shorter than recovery had read, newest last (for ``/status``)."""
        self.undecodable: deque[UndecodableBatch] = deque(maxlen=64)
        """Record batches the consumer stepped over, newest last (for ``/status``)."""
        self.undecodable_total = 0
        self._undecodable_seen = BoundedSet(4096)

    async def _send(self, out: Outgoing) -> Any:
        """Hand a record to aiokafka (not faust's send_soon buffer); the future resolves on broker ack."""
        return await self.app.producer.send(out.topic, out.key, out.value, out.partition, None, None)

    async def _deliver(self, outgoing: Sequence[Outgoing], pending: Sequence[Any] = ()) -> None:
        futures = [*pending]
        for out in outgoing:
            futures.append(await self._send(out))
        if futures:
            await asyncio.gather(*futures)

    async def _write_checkpoints(self, records: Sequence[Outgoing], pending: Sequence[Any] = ()) -> None:
        """Deliver changelog records so that the last one of each partition is a batch of its own.

        Tansu answers ListOffsets(latest) with the base offset of the partition's last record
        *batch* plus one, not the offset after its last record; faust's table recovery reads up
        to that "highwater" and silently drops the rest of a multi-record batch. Writing each
        partition's final record alone (after the others are acked) makes the reported end true.
        """
        last = {out.partition: i for i, out in enumerate(records)}
        tails = set(last.values())
        head = [out for i, out in enumerate(records) if i not in tails]
        if head:
            await self._deliver(head, pending)
            pending = ()
        await self._deliver([records[i] for i in sorted(tails)], pending)

    async def wait_for_tickets(self) -> None:
        try:
            await asyncio.wait_for(self.feed.ready.wait(), self.options.tickets_wait)
        except TimeoutError:
            log.warning("releases not caught up after %.0fs; processing telemetry anyway", self.options.tickets_wait)

    async def consume(self, stream: Any, events: Sequence[Any]) -> None:
        """Process one batch; its events are acked by the checkpoint that covers them."""
        try:
            await self.process(stream, events)
        except asyncio.CancelledError:
            raise  # not acked: the batch is redelivered
        except BaseException as exc:
            fail_stop(f"batch of {len(events)} messages could not be processed and delivered", exc)

    async def process(self, stream: Any, events: Sequence[Any]) -> None:
        """One batch, in commit order (module docstring): outputs now, changelog and acks at the checkpoint."""
        records = [
            SourceRecord(m.topic, m.partition, m.offset, m.key, m.value, _timestamp_ms(m.timestamp))
            for m in (event.message for event in events)
        ]
        runtime = self.runtime
        stages = runtime.metrics.stages
        async with self.lock:
            if self.halted:  # shutting down after an interrupted batch: leave everything unacked
                return
            try:
                t0 = time.perf_counter()
                produced = [r.timestamp_ms for r in records if r.timestamp_ms]
                if produced:
                    stages["wait"].observe(max(0.0, time.time() - min(produced) / 1000))
                fold = runtime.fold(records)
                t1 = time.perf_counter()
                for out in fold.deadletters:
                    self.pending.append(await self._send(out))
                judgement = runtime.judge(fold.touched, wall_ms())
                t2 = time.perf_counter()
                stages["fold"].observe(t1 - t0)
                stages["judge"].observe(t2 - t1)
                if judgement.commands:
                    await self._deliver(judgement.commands)
                    self._delivered(judgement)
                    stages["commands"].observe(time.perf_counter() - t2)
                self.stream = stream
                self.unacked.extend(events)
                if judgement.commands or self._due():
                    await self._checkpoint()
                else:
                    self._schedule()
            except asyncio.CancelledError:
                self.halted = True
                raise

    def _due(self) -> bool:
        return (
            time.monotonic() - self.last_checkpoint >= self.options.checkpoint_interval
            or len(self.unacked) >= self.options.batch_max
        )

    def _schedule(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._checkpoint_later())

    async def _checkpoint_later(self) -> None:
        """The checkpoint of the last batches when no further batch comes to take it."""
        app = self.app
        try:
            # Sooner when a rebalance or a stop begins: faust then waits for every event to be acked.
            while (delay := self.last_checkpoint + self.options.checkpoint_interval - time.monotonic()) > 0:
                if getattr(app, "rebalancing", False) or getattr(app, "should_stop", False):
                    break
                await asyncio.sleep(min(delay, 0.05))
            async with self.lock:
                # When faust revokes partitions (in a rebalance, or first thing when the worker
                # stops) it waits for every event to be acked before on_revoked: ``recovered``
                # is still true then and the partitions still ours, and this checkpoint is what
                # lets faust go on.
                if self.halted or not self.runtime.recovered:
                    return
                if self.unacked or self.pending or self.runtime.dirty:
                    await self._checkpoint()
        except asyncio.CancelledError:
            return
        except BaseException as exc:
            fail_stop("a checkpoint could not be delivered", exc)

    async def _checkpoint(self) -> None:
        """Steps 2-4 for everything folded so far (lock held): changelog, dead letters, then acks."""
        started = time.perf_counter()
        slots = self.runtime.unsaved()
        records = self.runtime.checkpoint(slots)
        pending, self.pending = self.pending, []
        try:
            if records:
                await self._write_checkpoints(records, pending)
            elif pending:
                await asyncio.gather(*pending)
        except asyncio.CancelledError:
            self.halted = True
            raise
        self.runtime.saved(slots)
        self.last_checkpoint = time.monotonic()
        events, self.unacked = self.unacked, []
        acked = time.perf_counter()
        for event in events:
            await self.stream.ack(event)
        stages = self.runtime.metrics.stages
        stages["checkpoint"].observe(acked - started)
        if events:
            stages["ack"].observe(time.perf_counter() - acked)

    def _delivered(self, judgement: Judgement) -> None:
        """Detection latency ends when the broker has the command: breach event time to ack."""
        now = wall_ms()
        for breach_ms in judgement.breaches:
            self.runtime.metrics.detection_latency.observe(max(0, now - breach_ms) / 1000)

    async def tick(self) -> None:
        """Judge every workflow on wall-clock time, so time-based gates fire without traffic."""
        async with self.lock:
            if self.halted or not self.runtime.recovered or self.app.rebalancing:
                return
            judgement = self.runtime.judge(self.runtime.sweep(self.options.tick_budget), wall_ms())
            self.runtime.totals["ticks"] += 1
            if judgement.commands:
                try:
                    await self._deliver(judgement.commands)
                except asyncio.CancelledError:
                    self.halted = True
                    raise
                self._delivered(judgement)
                await self._checkpoint()

    async def on_ticket(self, record: SourceRecord) -> None:
        async with self.lock:
            deadletters = self.runtime.on_ticket(record)
        if deadletters:
            try:
                await self._deliver(deadletters)
            except Exception:  # the ticket's own offset is not committed anywhere: nothing to protect
                log.exception("cannot dead-letter a bad ticket from %s@%d", record.topic, record.offset)

    async def on_revoked(self) -> None:
        async with self.lock:  # waits out a timer tick in flight, so no write follows the loss of a partition
            self.runtime.recovered = False
            if self.unacked:
                # faust waits for every event to be acked before it revokes, so this is only
                # reached when that wait was skipped: the events go back unacked, and the
                # engines that folded them stay dirty (replays are skipped, then checkpointed).
                log.warning("partitions revoked with %d events unacked", len(self.unacked))
                self.unacked.clear()

    async def on_changelog_reset(self, resets: list[ChangelogReset]) -> None:
        """The broker lost changelog records recovery had read: say so, and write the engines held back."""
        async with self.lock:
            lost = {r.partition for r in resets if r.kind == "active"}
            held = self.runtime.rewrite(lost)
            for reset in resets:
                self.changelog_resets.append(reset)
                self.runtime.metrics.changelog_resets.labels(str(reset.partition)).inc()
            log.warning(
                "changelog went backwards (the broker lost it): %s; reading the new log from its start "
                "and writing the %d engines held in memory for partitions %s back to it",
                ", ".join(
                    f"{r.topic}[{r.partition}] {r.kind} read up to {r.read_up_to}, ends at {r.highwater}"
                    for r in resets
                ),
                held,
                sorted(lost),
            )

    def on_undecodable(self, batch: UndecodableBatch) -> None:
        """A record batch nobody can decode was stepped over (:mod:`rollwatch.agents.fetch`).

        Counted (metric, ``/status``) and logged in one line. A telemetry batch is also
        dead-lettered by its place (its bytes are not available); the dead letter joins
        ``pending``, so it is on the broker before any later event is acked and faust's
        commit moves past the batch. Batches of the topics every worker tails (releases,
        control) are only counted: each worker would dead-letter them again. A batch read
        again by this process (a rebalance or rewind re-reads uncommitted offsets) is not
        counted again; a restarted worker counts and dead-letters it once more (at least
        once, like the rest).
        """
        where = f"{batch.topic}/{batch.partition}/{batch.first_offset}"
        if where in self._undecodable_seen:
            log.debug("stepped over the undecodable record batch at %s again", where)
            return
        self._undecodable_seen.add(where)
        self.undecodable.append(batch)
        self.undecodable_total += 1
        self.runtime.metrics.undecodable.labels(batch.topic).inc()
        log.warning(
            "stepped over an undecodable record batch %s[%d] offsets %d-%d: %s",
            batch.topic,
            batch.partition,
            batch.first_offset,
            batch.next_offset - 1,
            batch.error,
        )
        if batch.topic != self.runtime.topics.telemetry:
            return
        source = SourceRecord(batch.topic, batch.partition, batch.first_offset, None, None)
        reason = f"undecodable record batch (offsets {batch.first_offset}-{batch.next_offset - 1}): {batch.error}"
        out = dead_letter(self.runtime.topics.deadletter, source, reason=reason, field=None, index=None, raw=None)
        self.runtime.metrics.deadletters.labels("telemetry").inc()

        async def send() -> None:
            await (await self._send(out))

        self.pending.append(asyncio.ensure_future(send()))

    async def on_offsets_lost(self, partitions: set[int]) -> None:
        async with self.lock:
            self.runtime.on_offsets_lost(partitions)

    async def on_assigned(self, partitions: set[int]) -> None:
        async with self.lock:
            self.runtime.on_assigned(partitions)

    async def on_recovered(self, partitions: set[int], checkpoints: list[tuple[bytes, bytes]]) -> None:
        async with self.lock:
            if frozenset(partitions) != self.runtime.assigned:
                self.runtime.on_assigned(partitions)
            self.runtime.on_recovered(checkpoints)
            if self.runtime.dirty:
                self._schedule()  # engines to write back to a changelog that lost them
