"""The consumer lifecycle every control-topic consumer shares, so they cannot drift apart.

A command must be applied by every consumer or by none. The flag store and each gateway
therefore read the same topics in the same order and judge each command with the same
steps; this base class is that order, written once:

* **start**: the partitions of the releases, control and (optionally) flags topics are
  assigned by hand (no group join: slow on the embedded broker, and every consumer
  needs every partition of a small topic anyway); tickets are read to the end, then
  the verified flag documents; the control topic is positioned just after the newest
  command the rebuilt state contains (or the committed offset, when the consumer has a
  group), else at its beginning or its end (``start_at``);
* **the loop**: per fetch, tickets first (a revision and the command relying on it may
  share a fetch), then commands, then flag documents (derived from those commands); a
  record batch nobody can decode is counted and stepped over; on the idle path
  :class:`~rollwatch.control.topics.ResetWatch` re-reads partitions that came back empty;
* **each command**: decode; signature; "applied before?" (a duplicate changes nothing);
  policy (time, ticket, authority, effect), catching up with the releases topic once
  before refusing for an unknown or stale ticket; apply; one :class:`Verdict`; one ack;
* **stop**: the loop, then the consumer, then the producer (so queued acks are flushed).

A subclass says what applying means (:meth:`ControlConsumer.apply_command`) and what the
flags in force are (:meth:`ControlConsumer.current_flags`, for the effect checks), and
may add to what happens to a verdict, a ticket or a flag document through the ``on_*``
hooks. A second gateway is a small subclass; this one keeps flags in its book only
(``tests/control/test_consumer_base.py`` runs it against a live broker)::

    class BookGateway(ControlConsumer):
        def __init__(self, settings: Settings) -> None:
            super().__init__(settings, name="gateway-book", book=FlagBook(), tickets=TicketBook())

        def current_flags(self, workflow: str, segment: str | None) -> FlagMap:
            state = self.book.get(workflow)
            return state.effective(segment) if state is not None else {}

        async def apply_command(self, command: RollbackCommand, partition: int | None, offset: int | None) -> None:
            self.book.apply(command, self.clock(), partition, offset)
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self, TypeAlias

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from rollwatch.commands import ControlAck, RollbackCommand, decode_command, encode_ack
from rollwatch.control.state import FlagBook, FlagMap, WorkflowFlags, verified_state
from rollwatch.control.topics import (
    ResetWatch,
    close_clients,
    getmany_skipping,
    make_consumer,
    partitions_of,
    read_to_end,
    send_retrying,
)
from rollwatch.control.verify import CommandChecker, Refusal, TicketBook
from rollwatch.errors import ContractError
from rollwatch.kafka import make_producer
from rollwatch.settings import Settings
from rollwatch.signing import Keyring, keyring_from_settings
from rollwatch.tickets import Ticket, TicketError
from rollwatch.trust.releases import ReleaseRefused

__all__ = ["ControlConsumer", "Status", "Verdict", "sent_at"]

log = logging.getLogger(__name__)

Status: TypeAlias = Literal["applied", "refused", "duplicate"]
StartAt: TypeAlias = Literal["beginning", "end"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def sent_at(record: Any) -> datetime | None:
    """When the producer sent ``record`` (its CreateTime), if the broker reports one."""
    ts = getattr(record, "timestamp", None)
    return datetime.fromtimestamp(ts / 1000, UTC) if isinstance(ts, int) and ts > 0 else None


def _loose_ids(raw: bytes | None) -> tuple[str | None, str | None]:
    """Best-effort ``command_id`` and ``workflow`` of a message that failed validation, for its ack."""
    try:
        data = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    cid, workflow = data.get("command_id"), data.get("workflow")
    ok = isinstance(cid, str) and 0 < len(cid) <= 256
    return (cid if ok else None), (workflow if isinstance(workflow, str) and 0 < len(workflow) <= 256 else None)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one consumer did with one control message, and why.

    ``command`` is None for a message that is not a readable command; ``command_id`` and
    ``workflow`` are then the best guess from its bytes (None when there is none, and
    then nobody can be acked).
    """

    status: Status
    code: str
    detail: str
    command: RollbackCommand | None
    command_id: str | None
    workflow: str | None
    partition: int | None
    offset: int | None
    refusal: Refusal | None = None
    ack: ControlAck | None = None


class ControlConsumer(ABC):
    """Tails the releases, control and flags topics; verifies, applies and acks each command.

    ``group_id`` makes it commit the control offset after each command (the flag store);
    ``read_flags`` rebuilds from the verified flag documents at start and ``tail_flags``
    keeps merging them afterwards (a gateway catching up on what it missed).
    """

    kind: ClassVar[str] = "control consumer"
    """How logs name this kind of consumer."""
    ack_waits: ClassVar[bool] = False
    """Wait until the broker has each ack (durable, slower) rather than queue it."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        book: FlagBook,
        tickets: TicketBook,
        keys: Keyring | None = None,
        clock: Callable[[], datetime] = _utcnow,
        send_acks: bool = True,
        group_id: str | None = None,
        read_flags: bool = True,
        tail_flags: bool = True,
        start_at: StartAt = "end",
        fetch_max_wait_ms: int | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.book = book
        self.tickets = tickets
        self.keyring = keys if keys is not None else keyring_from_settings(settings)
        self.checker = CommandChecker.from_settings(self.keyring, tickets, settings)
        self.clock = clock
        self.send_acks = send_acks
        self.group_id = group_id
        self.read_flags = read_flags
        self.tail_flags = tail_flags and read_flags
        self.start_at: StartAt = start_at
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.counts: dict[str, int] = dict.fromkeys(
            ("applied", "refused", "duplicate", "merged", "tickets_refused", "flags_refused", "undecodable"), 0
        )
        self.last_refusal: Refusal | None = None
        self.reset_watch: ResetWatch | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._releases: list[TopicPartition] = []
        self._control: list[TopicPartition] = []
        self._flags: list[TopicPartition] = []
        self._paused_flags: list[TopicPartition] = []
        self._stopping = False

    # -- what a subclass decides ---------------------------------------------------------------

    @abstractmethod
    def current_flags(self, workflow: str, segment: str | None) -> FlagMap | None:
        """The flags in force in a command's scope (the effect checks compare against them)."""

    @abstractmethod
    async def apply_command(self, command: RollbackCommand, partition: int | None, offset: int | None) -> None:
        """Make a verified, new command take effect (before it is acked ``applied``)."""

    def on_verdict(self, verdict: Verdict) -> None:
        """Every verdict, before its ack; the base counts and logs it."""
        self.counts[verdict.status] += 1
        if verdict.status == "refused":
            self.last_refusal = verdict.refusal
            where = f"{verdict.partition}@{verdict.offset}"
            log.warning(
                "%s %s: command %s (%s) refused: %s", self.kind, self.name, verdict.command_id, where, verdict.detail
            )

    def on_ticket(self, record: Any, ticket: Ticket | None) -> None:
        """A releases-topic record taken (``ticket`` None: the workflow's ticket was withdrawn)."""
        return None

    def on_ticket_refused(self, record: Any, exc: ReleaseRefused | TicketError) -> None:
        """A releases-topic record refused; the previous ticket stays in force."""
        self.counts["tickets_refused"] += 1
        log.error(
            "%s %s: ticket at %s refused; keeping the previous one: %s", self.kind, self.name, _where(record), exc
        )

    def on_flag_state(self, state: WorkflowFlags) -> None:
        """A verified flag document: taken when newer than what is held."""
        if self.book.merge(state):
            self.counts["merged"] += 1

    def on_flags_refused(self, record: Any, code: str, detail: str) -> None:
        """A flags-topic record that is not a verified document: counted, never taken."""
        self.counts["flags_refused"] += 1
        log.error("%s %s: flags record %s refused: %s: %s", self.kind, self.name, _where(record), code, detail)

    def on_skipped(self, tp: TopicPartition, offset: int, exc: BaseException) -> None:
        """A record batch nobody can decode: counted and stepped over, so one producer cannot stop us."""
        self.counts["undecodable"] += 1
        log.error("%s %s: skipped undecodable %s[%d]@%d: %s", self.kind, self.name, tp.topic, tp.partition, offset, exc)

    async def after_start(self) -> None:
        """Everything is read and positioned; the loop starts next."""
        return None

    async def on_reset(self, rewound: list[TopicPartition]) -> None:
        """Partitions found empty or shorter than before (re-read from their start already)."""
        return None

    async def after_batch(self) -> None:
        """One fetch handled (the flag store republishes what a ticket change made stale)."""
        return None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.send_acks:
            self._producer = make_producer(self.settings, linger_ms=0)
            await self._producer.start()
        extra: dict[str, Any] = {"group_id": self.group_id} if self.group_id else {}
        if self.fetch_max_wait_ms is not None:
            extra["fetch_max_wait_ms"] = self.fetch_max_wait_ms
        consumer = make_consumer(self.settings, **extra)
        await consumer.start()
        self._consumer = consumer
        try:
            self._releases = await partitions_of(consumer, self.settings.topic_releases)
            self._control = await partitions_of(consumer, self.settings.topic_control)
            flags = await partitions_of(consumer, self.settings.topic_flags) if self.read_flags else []
            consumer.assign(self._releases + flags + self._control)
            await consumer.seek_to_beginning(*self._releases, *flags)
            await read_to_end(consumer, self._releases, self._on_release)
            if flags:
                await read_to_end(consumer, flags, self._on_flags)
            if self.tail_flags:
                self._flags = flags
            elif flags:
                consumer.pause(*flags)  # read once; still watched for a reset (see ``on_reset``)
                self._paused_flags = flags
            await self._position_control(consumer)
            await self.after_start()
        except BaseException:
            await self.stop()
            raise
        self._task = asyncio.create_task(self._run(), name=f"rollwatch-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        task, consumer, producer = self._task, self._consumer, self._producer
        self._task = self._consumer = self._producer = None
        await close_clients(task, consumer, producer)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _position_control(self, consumer: AIOKafkaConsumer) -> None:
        """Just after the committed offset or the newest command the state contains, whichever is later."""
        end = await consumer.end_offsets(self._control) if self.start_at == "end" else {}
        for tp in self._control:
            committed = await consumer.committed(tp) if self.group_id else None
            in_state = [
                s.offset + 1
                for s in self.book.workflows.values()
                if s.partition == tp.partition and s.offset is not None
            ]
            start = max([o for o in (committed, *in_state) if o is not None], default=None)
            if start is not None:
                consumer.seek(tp, start)
            elif self.start_at == "end":
                consumer.seek(tp, end[tp])
            else:
                await consumer.seek_to_beginning(tp)

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        control, releases = set(self._control), set(self._releases)
        tps = self._releases + self._control + self._flags
        self.reset_watch = watch = ResetWatch(consumer, tps + self._paused_flags)
        await watch.check()
        while True:
            try:
                batches = await getmany_skipping(consumer, tps, 200, self.on_skipped)
            except KafkaError:
                log.exception("%s %s: fetch failed; retrying", self.kind, self.name)
                await asyncio.sleep(0.5)
                continue
            if not batches:
                rewound = await watch.check()  # a recreated topic or a broker that came back empty
                if rewound:
                    await self.on_reset(rewound)
            for tp in sorted(batches, key=lambda tp: (tp not in releases, tp not in control)):
                for record in batches[tp]:
                    try:
                        if tp in releases:
                            self._on_release(record)
                        elif tp in control:
                            await self.process(record.value, tp.partition, record.offset, sent_at(record))
                        else:
                            self._on_flags(record)
                    except Exception:  # a bug must not wedge the control plane on one record
                        log.exception("%s %s: failed on %s@%d; skipped", self.kind, self.name, tp, record.offset)
                    if tp in control and self.group_id:
                        await self._commit(tp, record.offset + 1)
            await self.after_batch()

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit({tp: offset})
        except KafkaError:  # the state documents still make a re-read idempotent
            log.warning("%s %s: cannot commit %s@%d", self.kind, self.name, tp, offset, exc_info=True)

    # -- records -------------------------------------------------------------------------------

    def _on_release(self, record: Any) -> None:
        try:
            ticket = self.tickets.load_record(record.key, record.value, _where(record), self.keyring)
        except (ReleaseRefused, TicketError) as exc:
            self.on_ticket_refused(record, exc)
            return
        self.on_ticket(record, ticket)

    def _on_flags(self, record: Any) -> None:
        state = verified_state(record.value, self.keyring)
        if isinstance(state, tuple):
            self.on_flags_refused(record, *state)
        else:
            self.on_flag_state(state)

    async def catch_up_releases(self) -> None:
        """Read the releases topic to its end now (a command may have overtaken its ticket)."""
        if self._consumer is None or not self._releases:
            return
        try:
            await read_to_end(self._consumer, self._releases, self._on_release, timeout_s=2.0)
        except Exception:
            log.warning("%s %s: could not catch up with releases", self.kind, self.name, exc_info=True)

    async def process(
        self,
        raw: bytes | None,
        partition: int | None = None,
        offset: int | None = None,
        sent: datetime | None = None,
    ) -> Verdict:
        """Check and apply one control message; the verdict, with the ack sent for it."""
        verdict = await self._judge(raw, partition, offset, sent)
        self.on_verdict(verdict)
        if verdict.command_id is None:
            return verdict
        detail = None if verdict.status == "applied" else verdict.detail
        ack = await self._ack(verdict.command_id, verdict.workflow, verdict.status, detail)
        return replace(verdict, ack=ack)

    async def _judge(
        self, raw: bytes | None, partition: int | None, offset: int | None, sent: datetime | None
    ) -> Verdict:
        try:
            command = decode_command(raw or b"")
        except ContractError as exc:
            command_id, workflow = _loose_ids(raw)
            bad = Refusal("malformed", str(exc))
            return Verdict("refused", "malformed", str(bad), None, command_id, workflow, partition, offset, bad)
        where = (command, command.command_id, command.workflow, partition, offset)
        refusal = self.checker.check_signature(command, raw)
        if refusal is None and self.book.seen(command.command_id):
            return Verdict(
                "duplicate", "duplicate", "already applied: a replay or a redelivery changes nothing", *where
            )
        if refusal is None:
            refusal = self._policy(command, sent)
            if refusal is not None and refusal.code in ("unknown_ticket", "stale_ticket"):
                await self.catch_up_releases()
                refusal = self._policy(command, sent)
        if refusal is not None:
            return Verdict("refused", refusal.code, str(refusal), *where, refusal)
        await self.apply_command(command, partition, offset)
        return Verdict("applied", "applied", f"{command.action}: {len(command.flags)} flag(s)", *where)

    def _policy(self, command: RollbackCommand, sent: datetime | None) -> Refusal | None:
        current = self.current_flags(command.workflow, command.segment)
        return self.checker.check_policy(command, self.clock(), dict(current) if current else None, sent)

    async def _ack(self, command_id: str, workflow: str | None, status: Status, detail: str | None) -> ControlAck:
        ack = ControlAck(
            command_id=command_id,
            consumer=self.name,
            applied_at=self.clock(),
            workflow=workflow,
            status=status,
            detail=detail[:4096] if detail else None,
        )
        if self._producer is None:
            return ack
        key, value = (workflow or command_id).encode(), encode_ack(ack)
        if self.ack_waits:
            await send_retrying(self._producer, self.settings.topic_acks, value, key, lambda: self._stopping)
            return ack
        try:  # queued without waiting for the broker: the next command should not wait on it
            delivery = await self._producer.send(self.settings.topic_acks, value, key=key)
        except KafkaError as exc:
            log.warning("%s %s: ack of %s not sent: %s", self.kind, self.name, command_id, exc)
            return ack
        delivery.add_done_callback(self._ack_delivered)
        return ack

    def _ack_delivered(self, delivery: asyncio.Future[Any]) -> None:
        if not delivery.cancelled() and delivery.exception() is not None:
            log.warning("%s %s: an ack was not delivered: %s", self.kind, self.name, delivery.exception())


def _where(record: Any) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"
