"""Decision-to-applied latency: how long after a decision each consumer acted on it.

The rollback objective ("restore within 15 minutes") is only real if the time from a
command's ``issued_at`` to each flag store and gateway applying it is measured. This
module joins the control topic (``issued_at``) with the acks topic (``applied_at`` per
consumer) into a Prometheus histogram per consumer, and counts the commands that no
consumer acknowledged within the deadline: a silent control plane is the failure that
matters most and the one nobody notices without a counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Histogram

from rollwatch.commands import ControlAck, decode_ack, decode_command
from rollwatch.control.topics import getmany_skipping, partitions_of
from rollwatch.errors import ContractError
from rollwatch.kafka import client_options
from rollwatch.settings import Settings

__all__ = ["LATENCY_BUCKETS", "AckMonitor", "ApplyLatency"]

log = logging.getLogger(__name__)

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
"""From loopback (milliseconds) to the seed's 15-minute rollback objective."""


class _Pending:
    __slots__ = ("acked", "deadline", "issued_at", "workflow")

    def __init__(self, issued_at: datetime, deadline: datetime, workflow: str) -> None:
        self.issued_at = issued_at
        self.deadline = deadline
        self.workflow = workflow
        self.acked = False


class ApplyLatency:
    """The join and the metrics, without Kafka (fed by :class:`AckMonitor` or a test)."""

    def __init__(self, registry: CollectorRegistry, deadline_s: float, max_pending: int = 100_000) -> None:
        self.deadline = timedelta(seconds=deadline_s)
        self.max_pending = max_pending
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._early: OrderedDict[str, list[ControlAck]] = OrderedDict()
        self.histogram = Histogram(
            "rollwatch_decision_to_applied_seconds",
            "Seconds from a command's issued_at to a consumer applying it",
            ["consumer"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.acks = Counter(
            "rollwatch_command_acks",
            "Acknowledgements received, by consumer and status",
            ["consumer", "status"],
            registry=registry,
        )
        self.unacknowledged = Counter(
            "rollwatch_commands_unacknowledged",
            "Commands that no consumer acknowledged within the deadline",
            registry=registry,
        )
        self.undecodable = Counter(
            "rollwatch_ack_monitor_undecodable_batches",
            "Record batches of the control or acks topic the ack monitor could not decode and skipped",
            ["topic"],
            registry=registry,
        )

    def command_seen(self, command_id: str, issued_at: datetime, workflow: str, seen_at: datetime) -> None:
        """Start the deadline from when the command was seen, so a skewed producer clock cannot fire it."""
        if command_id in self._pending:
            return
        entry = _Pending(issued_at, seen_at + self.deadline, workflow)
        self._pending[command_id] = entry
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
        for ack in self._early.pop(command_id, []):
            self._observe(entry, ack)

    def ack_seen(self, ack: ControlAck) -> float | None:
        """Record one ack; the seconds to apply when it is an ``applied`` ack of a known command."""
        self.acks.labels(ack.consumer, ack.status).inc()
        entry = self._pending.get(ack.command_id)
        if entry is None:  # the ack overtook its command (different topics): keep it until the command arrives
            self._early.setdefault(ack.command_id, []).append(ack)
            while len(self._early) > self.max_pending:
                self._early.popitem(last=False)
            return None
        return self._observe(entry, ack)

    def _observe(self, entry: _Pending, ack: ControlAck) -> float | None:
        entry.acked = True
        if ack.status != "applied":
            return None
        seconds = max(0.0, (ack.applied_at - entry.issued_at).total_seconds())
        self.histogram.labels(ack.consumer).observe(seconds)
        return seconds

    def sweep(self, now: datetime) -> list[str]:
        """Close commands past their deadline; the ids nobody acknowledged (each counted once)."""
        missed = []
        for command_id in [cid for cid, entry in self._pending.items() if entry.deadline <= now]:
            entry = self._pending.pop(command_id)
            if not entry.acked:
                missed.append(command_id)
                self.unacknowledged.inc()
                log.warning("command %s of %r: no consumer acknowledged it in time", command_id, entry.workflow)
        return missed


class AckMonitor:
    """Tails the control and acks topics (from their end at start) into an :class:`ApplyLatency`."""

    def __init__(
        self,
        settings: Settings,
        latency: ApplyLatency,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.latency = latency
        self.clock = clock
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(**client_options(self.settings), enable_auto_commit=False, fetch_max_wait_ms=100)
        await consumer.start()
        try:
            tps = [
                *await partitions_of(consumer, self.settings.topic_control),
                *await partitions_of(consumer, self.settings.topic_acks),
            ]
        except BaseException:
            await consumer.stop()
            raise
        consumer.assign(tps)
        self._tps = tps
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve "end" now, not at the first fetch
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="rollwatch-ack-monitor")

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await getmany_skipping(self._consumer, self._tps, 250, self._skipped)
            except KafkaError:
                log.exception("ack monitor: fetch failed; retrying")
                await asyncio.sleep(0.5)
                continue
            now = self.clock()
            for tp, records in batches.items():
                for record in records:
                    self._one(tp.topic, record.value, now)
            self.latency.sweep(now)

    def _skipped(self, tp: TopicPartition, offset: int, exc: BaseException) -> None:
        """Stepped over, not retried forever: a batch nobody can decode would otherwise blind the monitor."""
        self.latency.undecodable.labels(tp.topic).inc()
        log.error("ack monitor: skipped undecodable %s[%d]@%d: %s", tp.topic, tp.partition, offset, exc)

    def _one(self, topic: str, value: bytes | None, now: datetime) -> None:
        if value is None:
            return
        try:
            if topic == self.settings.topic_control:
                command = decode_command(value)
                self.latency.command_seen(command.command_id, command.issued_at, command.workflow, now)
            else:
                self.latency.ack_seen(decode_ack(value))
        except ContractError as exc:
            log.warning("ack monitor: unreadable record on %s: %s", topic, exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
