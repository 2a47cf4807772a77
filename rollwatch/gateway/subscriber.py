"""Keeps a gateway's :class:`FlagCache` current from Kafka, and acks what it applied.

At start it reads the releases topic (tickets: the flags' base state and the authority
commands are checked against) and the compacted flags topic (the flag store's state of
record), then tails the control topic from just after the newest command that state
contains, or from the end where the flag store has written nothing. It keeps tailing
all three: control for speed (a command lands here without waiting for the flag
store), flags for catching up on anything missed while it was down.

Each command goes through the same checks as in the flag store (:mod:`~rollwatch.flagstore.verify`).
Tickets must be signed by a key trusted for tickets, and the flag store's documents by a
key trusted for flags; anything else is refused, counted in ``counts`` and logged, and
changes nothing. ``follow_flag_store=False`` relies on signed commands alone.

``fetch_max_wait_ms`` bounds how long an idle fetch waits. Kafka answers a fetch as
soon as data arrives, so there it only sets the idle poll rate; the embedded broker
waits the full time, so there it is most of the decision-to-applied latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from rollwatch.commands import ControlAck, RollbackCommand, decode_command, encode_ack
from rollwatch.errors import ContractError
from rollwatch.flagstore.errors import StateFormatError
from rollwatch.flagstore.service import sent_at
from rollwatch.flagstore.state import decode_state
from rollwatch.flagstore.topics import (
    ResetWatch,
    close_clients,
    getmany_skipping,
    make_consumer,
    partitions_of,
    read_to_end,
)
from rollwatch.flagstore.verify import CommandChecker, Refusal
from rollwatch.gateway.cache import FlagCache
from rollwatch.kafka import make_producer
from rollwatch.settings import Settings
from rollwatch.signing import Keyring, keyring_from_settings
from rollwatch.tickets import TicketError
from rollwatch.trust import SignatureError
from rollwatch.trust.releases import ReleaseRefused

__all__ = ["ControlSubscriber"]

log = logging.getLogger(__name__)

Status = Literal["applied", "refused", "duplicate"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ControlSubscriber:
    """Feeds ``cache`` from the control, releases and flags topics of ``settings``."""

    def __init__(
        self,
        settings: Settings,
        cache: FlagCache,
        *,
        consumer_name: str = "gateway",
        keys: Keyring | None = None,
        follow_flag_store: bool = True,
        send_acks: bool = True,
        fetch_max_wait_ms: int = 20,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.name = consumer_name
        self.keyring = keys if keys is not None else keyring_from_settings(settings)
        self.checker = CommandChecker.from_settings(self.keyring, cache.tickets, settings)
        self.follow_flag_store = follow_flag_store
        self.send_acks = send_acks
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.clock = clock
        self.counts: dict[str, int] = {
            "applied": 0,
            "refused": 0,
            "duplicate": 0,
            "merged": 0,
            "tickets_refused": 0,
            "flags_refused": 0,
            "undecodable": 0,
        }
        self.last_refusal: Refusal | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._releases: list[TopicPartition] = []
        self._flags: list[TopicPartition] = []
        self._control: list[TopicPartition] = []
        self._stopping = False
        self.reset_watch: ResetWatch | None = None

    async def start(self) -> None:
        if self.send_acks:
            self._producer = make_producer(self.settings, linger_ms=0)
            await self._producer.start()
        consumer = make_consumer(self.settings, fetch_max_wait_ms=self.fetch_max_wait_ms)
        await consumer.start()
        self._consumer = consumer
        try:
            self._releases = await partitions_of(consumer, self.settings.topic_releases)
            self._control = await partitions_of(consumer, self.settings.topic_control)
            self._flags = await partitions_of(consumer, self.settings.topic_flags) if self.follow_flag_store else []
            consumer.assign(self._releases + self._flags + self._control)
            await consumer.seek_to_beginning(*self._releases, *self._flags)
            await read_to_end(consumer, self._releases, self._on_release)
            if self._flags:
                await read_to_end(consumer, self._flags, self._on_flags)
            await self._position_control(consumer)
        except BaseException:
            await self.stop()
            raise
        self._task = asyncio.create_task(self._run(), name=f"rollwatch-gateway-{self.name}")

    async def _position_control(self, consumer: AIOKafkaConsumer) -> None:
        end = await consumer.end_offsets(self._control)
        for tp in self._control:
            offsets = [
                s.offset
                for s in self.cache.book.workflows.values()
                if s.partition == tp.partition and s.offset is not None
            ]
            consumer.seek(tp, max(offsets) + 1 if offsets else end[tp])

    async def stop(self) -> None:
        self._stopping = True
        task, consumer, producer = self._task, self._consumer, self._producer
        self._task = self._consumer = self._producer = None
        await close_clients(task, consumer, producer)

    async def __aenter__(self) -> ControlSubscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _skipped(self, tp: TopicPartition, offset: int, exc: BaseException) -> None:
        """A batch nobody can decode: counted and stepped over, so one producer cannot freeze the flags."""
        self.counts["undecodable"] += 1
        log.error("gateway %s: skipped undecodable %s[%d]@%d: %s", self.name, tp.topic, tp.partition, offset, exc)

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        control = set(self._control)
        releases = set(self._releases)
        self.reset_watch = watch = ResetWatch(consumer, self._releases + self._flags + self._control)
        await watch.check()
        while True:
            try:
                batches = await getmany_skipping(
                    consumer, self._releases + self._control + self._flags, 200, self._skipped
                )
            except KafkaError:
                log.exception("gateway %s: fetch failed; retrying", self.name)
                await asyncio.sleep(0.5)
                continue
            if not batches:
                await watch.check()  # a recreated topic or a broker that came back empty
            # Tickets first (a revision and the command relying on it may share a fetch), then
            # commands, then the flag store's documents, which are derived from those commands.
            for tp in sorted(batches, key=lambda tp: (tp not in releases, tp not in control)):
                for record in batches[tp]:
                    try:
                        if tp in releases:
                            self._on_release(record)
                        elif tp in control:
                            await self.handle(record.value, tp.partition, record.offset, sent_at(record))
                        else:
                            self._on_flags(record)
                    except Exception:  # one bad record must not stop rollbacks from landing
                        log.exception("gateway %s: failed on %s@%d; skipped", self.name, tp, record.offset)

    def _on_release(self, record: Any) -> None:
        source = f"{record.topic}[{record.partition}]@{record.offset}"
        try:
            self.cache.load_release(record.key, record.value, source, self.keyring)
        except (ReleaseRefused, TicketError) as exc:
            self.counts["tickets_refused"] += 1
            log.error("gateway %s: ticket at %s refused; keeping the previous one: %s", self.name, source, exc)

    def _on_flags(self, record: Any) -> None:
        problem: str | None = None
        if record.value is None:
            problem = "a tombstone is unsigned"
        else:
            try:
                state = decode_state(record.value, self.keyring)
            except (StateFormatError, SignatureError) as exc:
                problem = str(exc)
        if problem is not None:
            self.counts["flags_refused"] += 1
            log.error("gateway %s: flags record %d@%d refused: %s", self.name, record.partition, record.offset, problem)
            return
        if self.cache.merge(state):
            self.counts["merged"] += 1

    async def handle(
        self,
        raw: bytes | None,
        partition: int | None = None,
        offset: int | None = None,
        sent: datetime | None = None,
    ) -> Status | None:
        """Check and apply one control message; what was done (None for an unreadable one)."""
        try:
            command = decode_command(raw or b"")
        except ContractError as exc:
            log.warning("gateway %s: control message %s@%s refused: %s", self.name, partition, offset, exc)
            self.counts["refused"] += 1
            return None
        refusal = self.checker.check_signature(command, raw)
        if refusal is None and self.cache.book.seen(command.command_id):
            await self._ack(command.command_id, command.workflow, "duplicate", None)
            return "duplicate"
        if refusal is None:
            refusal = self._policy(command, sent)
            if refusal is not None and refusal.code in ("unknown_ticket", "stale_ticket") and self._consumer:
                with contextlib.suppress(Exception):
                    await read_to_end(self._consumer, self._releases, self._on_release, timeout_s=2.0)
                refusal = self._policy(command, sent)
        if refusal is not None:
            self.last_refusal = refusal
            log.warning("gateway %s: command %s refused: %s", self.name, command.command_id, refusal)
            await self._ack(command.command_id, command.workflow, "refused", str(refusal))
            return "refused"
        self.cache.apply(command, self.clock(), partition, offset)
        await self._ack(command.command_id, command.workflow, "applied", None)
        return "applied"

    def _policy(self, command: RollbackCommand, sent: datetime | None) -> Refusal | None:
        current = dict(self.cache.flags(command.workflow, command.segment))
        return self.checker.check_policy(command, self.clock(), current, sent)

    async def _ack(self, command_id: str, workflow: str, status: Status, detail: str | None) -> None:
        self.counts[status] += 1
        if self._producer is None:
            return
        ack = ControlAck(
            command_id=command_id,
            consumer=self.name,
            applied_at=self.clock(),
            workflow=workflow,
            status=status,
            detail=detail[:4096] if detail else None,
        )
        # Queue the ack without waiting for the broker: the next command should not wait on it.
        try:
            delivery = await self._producer.send(self.settings.topic_acks, encode_ack(ack), key=workflow.encode())
        except KafkaError as exc:
            log.warning("gateway %s: ack of %s not sent: %s", self.name, command_id, exc)
            return
        delivery.add_done_callback(self._ack_delivered)

    def _ack_delivered(self, delivery: asyncio.Future[Any]) -> None:
        if not delivery.cancelled() and delivery.exception() is not None:
            log.warning("gateway %s: an ack was not delivered: %s", self.name, delivery.exception())
