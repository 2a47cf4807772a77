"""The flag store: applies verified rollback commands and publishes the flags in force.

Per command, in control-topic order: verify (signature, then "seen before?", then
expiry, ticket and authority), apply to the per-workflow state, write the state to the
compacted flags topic (the durable truth it rebuilds from) and to Redis, audit, ack,
then commit the control offset. A crash between any two steps is harmless: the state
document remembers the command ids it contains, so the re-read command is a duplicate.

It reads the releases topic from the beginning (the tickets whose authority commands
are checked against) and, before refusing a command for an unknown or stale ticket,
catches up with it once more, because a ticket and a command published moments apart
on different topics may arrive in either order.

Nothing unsigned changes its flags: tickets must be signed by a key trusted for tickets
(a refused one is audited, counted and leaves the previous ticket in force), and it
rebuilds at start only from flag documents signed by a key trusted for flags (its own),
so a forged document can neither set flags nor erase the applied command ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge

from rollwatch.commands import ControlAck, RollbackCommand, decode_command, encode_ack, rfc3339
from rollwatch.errors import ContractError
from rollwatch.flagstore.audit import AuditLog, AuditRecord, Outcome, Subject
from rollwatch.flagstore.errors import StateFormatError
from rollwatch.flagstore.redis_sink import RedisFlags
from rollwatch.flagstore.state import FlagBook, FlagMap, WorkflowFlags, decode_state
from rollwatch.flagstore.topics import (
    ResetWatch,
    close_clients,
    getmany_skipping,
    make_consumer,
    partitions_of,
    read_to_end,
    send_retrying,
)
from rollwatch.flagstore.verify import CommandChecker, Refusal, TicketBook
from rollwatch.kafka import make_producer
from rollwatch.notify import Notifier, notice_for_command
from rollwatch.settings import Settings
from rollwatch.signing import Keyring, keyring_from_settings, signing_key_from_settings
from rollwatch.tickets import TicketError, candidate_flags
from rollwatch.trust import SignatureError
from rollwatch.trust.releases import ReleaseRefused

__all__ = ["FlagStore", "load_flag_states"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def sent_at(record: Any) -> datetime | None:
    """When the producer sent ``record`` (its CreateTime), if the broker reports one."""
    ts = getattr(record, "timestamp", None)
    return datetime.fromtimestamp(ts / 1000, UTC) if isinstance(ts, int) and ts > 0 else None


async def load_flag_states(
    settings: Settings,
    keyring: Keyring | None,
    consumer: AIOKafkaConsumer | None = None,
    on_refused: Callable[[Any, str, str], None] | None = None,
) -> list[WorkflowFlags]:
    """Every workflow's latest *verified* state on the compacted flags topic.

    A record that is unreadable, unsigned or signed by a key not trusted for flags is
    skipped (``on_refused(record, code, detail)``) and does not replace the verified state
    before it; a tombstone is skipped too, since nobody signed it. ``keyring=None`` reads
    without verifying (tools that only display).
    """
    own = consumer is None
    consumer = consumer or make_consumer(settings)
    if own:
        await consumer.start()
    try:
        tps = await partitions_of(consumer, settings.topic_flags)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        latest: dict[str, WorkflowFlags] = {}

        def refuse(record: Any, code: str, detail: str) -> None:
            log.error("flags topic %s@%d: skipped: %s: %s", record.partition, record.offset, code, detail)
            if on_refused is not None:
                on_refused(record, code, detail)

        def take(record: Any) -> None:
            if record.value is None:
                refuse(record, "unsigned", "a tombstone is unsigned; the last verified state stays")
                return
            try:
                state = decode_state(record.value, keyring)
            except StateFormatError as exc:
                refuse(record, "malformed", str(exc))
                return
            except SignatureError as exc:
                refuse(record, exc.problem, str(exc))
                return
            latest[state.workflow] = state

        await read_to_end(consumer, tps, take)
        return list(latest.values())
    finally:
        if own:
            await consumer.stop()


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


class FlagStore:
    """One flag store process. ``start()`` rebuilds state and starts consuming; ``stop()`` ends it."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str = "flagstore",
        redis: RedisFlags | None = None,
        audit: AuditLog | None = None,
        keys: Keyring | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = _utcnow,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.notifier = notifier if notifier is not None else Notifier.from_settings(settings)
        """Told of every applied command (issue 14); posting never waits on a webhook."""
        self.name = name
        self.redis = redis
        self.audit = audit if audit is not None else AuditLog(settings.flagstore_audit_path)
        self.tickets = TicketBook()
        self.keyring = keys if keys is not None else keyring_from_settings(settings)
        self.checker = CommandChecker.from_settings(self.keyring, self.tickets, settings)
        self.signer = signing_key_from_settings(settings, self.keyring if settings.keyring_file else None)
        if self.signer is None:
            log.warning("flag store %s has no signing key: readers will refuse the flag documents it writes", name)
        self.book = FlagBook()
        self.clock = clock
        self.registry = registry if registry is not None else CollectorRegistry()
        self.outcomes = Counter(
            "rollwatch_flagstore_commands",
            "Commands seen by the flag store",
            ["outcome", "code"],
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "rollwatch_flagstore_redis_errors", "Failed writes of flags to Redis", registry=self.registry
        )
        self.workflows = Gauge("rollwatch_flagstore_workflows", "Workflows with flags", registry=self.registry)
        self.undecodable = Counter(
            "rollwatch_flagstore_undecodable_batches",
            "Record batches the flag store could not decode (codec, CRC, corrupt bytes) and skipped",
            ["topic"],
            registry=self.registry,
        )
        self.refused_documents = Counter(
            "rollwatch_flagstore_documents_refused",
            "Release tickets and flag documents refused (unsigned, forged, untrusted key, older revision)",
            ["subject", "code"],
            registry=self.registry,
        )
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._control: list[TopicPartition] = []
        self._releases: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._redis_dirty: set[str] = set()
        self._flags_dirty: set[str] = set()
        """Workflows whose ticket changed: their flags document (flags in force) is republished."""
        self.reset_watch: ResetWatch | None = None

    # -- reading state -------------------------------------------------------------------------

    def base(self, workflow: str) -> FlagMap | None:
        """The ticket's own state for ``workflow`` (its canary running), under any command layers."""
        ticket = self.tickets.get(workflow)
        return {str(k): v for k, v in candidate_flags(ticket).items()} if ticket is not None else None

    def effective(self, workflow: str, segment: str | None = None) -> FlagMap | None:
        """The flags in force; None for a workflow with neither a ticket nor commands."""
        state = self.book.get(workflow)
        base = self.base(workflow)
        if state is None:
            return base
        return state.effective(segment, base)

    def ticket_ref(self, workflow: str) -> dict[str, Any] | None:
        """The ticket in force as the flags document names it: id, revision and bucketing scheme."""
        ticket = self.tickets.get(workflow)
        if ticket is None:
            return None
        return {"ticket": ticket.ticket, "revision": ticket.revision, "bucketing": ticket.canary.bucketing}

    def document(self, state: WorkflowFlags) -> bytes:
        """The signed flags document of ``state``, with the flags in force and the ticket."""
        return state.to_json(self.signer, self.base(state.workflow), self.ticket_ref(state.workflow))

    def known_workflows(self) -> list[str]:
        return sorted(set(self.book.workflows) | set(self.tickets.workflows()))

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._producer = make_producer(self.settings, linger_ms=0)
        await self._producer.start()
        consumer = make_consumer(self.settings, group_id=f"rollwatch.flagstore.{self.name}")
        await consumer.start()
        self._consumer = consumer
        try:
            self.book.load_all(await load_flag_states(self.settings, self.keyring, on_refused=self._refused_flags))
            self._releases = await partitions_of(consumer, self.settings.topic_releases)
            self._control = await partitions_of(consumer, self.settings.topic_control)
            consumer.assign(self._releases + self._control)
            await consumer.seek_to_beginning(*self._releases)
            await read_to_end(consumer, self._releases, self._on_release)
            await self._position_control(consumer)
        except BaseException:
            await self.stop()
            raise
        for workflow in self.known_workflows():
            await self._sync_redis(workflow)
        self.workflows.set(len(self.known_workflows()))
        if self.notifier is not None:
            await self.notifier.start()
        self._task = asyncio.create_task(self._run(), name=f"rollwatch-flagstore-{self.name}")

    async def _position_control(self, consumer: AIOKafkaConsumer) -> None:
        """Resume after the committed offset, or after the newest command the rebuilt state contains."""
        for tp in self._control:
            committed = await consumer.committed(tp)
            in_state = [
                s.offset + 1
                for s in self.book.workflows.values()
                if s.partition == tp.partition and s.offset is not None
            ]
            start = max([o for o in (committed, *in_state) if o is not None], default=None)
            if start is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)

    async def stop(self) -> None:
        self._stopping = True
        task, consumer, producer = self._task, self._consumer, self._producer
        self._task = self._consumer = self._producer = None
        await close_clients(task, consumer, producer)
        if self.notifier is not None:
            await self.notifier.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        control = set(self._control)
        self.reset_watch = watch = ResetWatch(consumer, self._releases + self._control)
        await watch.check()
        while True:
            try:
                batches = await getmany_skipping(consumer, self._releases + self._control, 200, self._skipped)
            except KafkaError:
                log.exception("flag store %s: fetch failed; retrying", self.name)
                await asyncio.sleep(0.5)
                continue
            if not batches:
                await watch.check()  # a recreated topic or a broker that came back empty
            for tp, records in batches.items():
                if tp not in control:
                    for record in records:
                        self._on_release(record)
            for tp, records in batches.items():
                if tp in control:
                    for record in records:
                        try:
                            await self.process(record.value, tp.partition, record.offset, sent_at(record))
                        except Exception:  # a bug must not wedge the control plane on one message
                            log.exception("flag store %s: failed on %s@%d; skipped", self.name, tp, record.offset)
                        await self._commit(tp, record.offset + 1)
            for workflow in sorted(self._flags_dirty):
                self._flags_dirty.discard(workflow)
                await self._publish_state(self.book.get(workflow) or WorkflowFlags(workflow))
            for workflow in list(self._redis_dirty):
                await self._sync_redis(workflow)

    def _skipped(self, tp: TopicPartition, offset: int, exc: BaseException) -> None:
        """A record batch nobody can decode: counted and stepped over, so one producer cannot stop the store."""
        self.undecodable.labels(tp.topic).inc()
        log.error("flag store %s: skipped undecodable %s[%d]@%d: %s", self.name, tp.topic, tp.partition, offset, exc)

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit({tp: offset})
        except KafkaError:  # the state documents still make a re-read idempotent
            log.warning("flag store %s: cannot commit %s@%d", self.name, tp, offset, exc_info=True)

    # -- releases ------------------------------------------------------------------------------

    def _on_release(self, record: Any) -> None:
        source = f"{self.settings.topic_releases}[{record.partition}]@{record.offset}"
        try:
            ticket = self.tickets.load_record(record.key, record.value, source, self.keyring)
        except (ReleaseRefused, TicketError) as exc:
            code = exc.code if isinstance(exc, ReleaseRefused) else "malformed"
            log.error("flag store %s: ticket at %s refused; keeping the previous one: %s", self.name, source, exc)
            workflow = record.key.decode("utf-8", "replace") if record.key else None
            self._audit_document("ticket", code, str(exc), workflow, record.partition, record.offset)
            return
        if record.key is not None:
            self._redis_dirty.add(record.key.decode("utf-8", "replace"))
        if ticket is not None:
            self._redis_dirty.add(ticket.workflow)
            self._flags_dirty.add(ticket.workflow)
            log.info(
                "flag store %s: ticket %s r%d in force for %r",
                self.name,
                ticket.ticket,
                ticket.revision,
                ticket.workflow,
            )

    async def _catch_up_releases(self) -> None:
        if self._consumer is None or not self._releases:
            return
        try:
            await read_to_end(self._consumer, self._releases, self._on_release, timeout_s=2.0)
        except Exception:
            log.warning("flag store %s: could not catch up with releases", self.name, exc_info=True)

    # -- commands ------------------------------------------------------------------------------

    def _refused_flags(self, record: Any, code: str, detail: str) -> None:
        workflow = record.key.decode("utf-8", "replace") if record.key else None
        self._audit_document("flags", code, detail, workflow, record.partition, record.offset)

    async def process(
        self,
        raw: bytes | None,
        partition: int | None = None,
        offset: int | None = None,
        sent: datetime | None = None,
    ) -> ControlAck | None:
        """Verify and apply one control message; the ack published (None when there is nobody to ack)."""
        try:
            command = decode_command(raw or b"")
        except ContractError as exc:
            command_id, workflow = _loose_ids(raw)
            malformed = Refusal("malformed", str(exc))
            self._audit_raw(malformed, command_id, workflow, partition, offset)
            if command_id is None:
                return None
            return await self._ack(command_id, workflow, "refused", str(malformed))
        refusal = self.checker.check_signature(command, raw)
        if refusal is None and self.book.seen(command.command_id):
            detail = "already applied: a replay or a redelivery changes nothing"
            self._audit(command, "duplicate", "duplicate", detail, partition, offset)
            return await self._ack(command.command_id, command.workflow, "duplicate", detail)
        if refusal is None:
            refusal = self._policy(command, sent)
            if refusal is not None and refusal.code in ("unknown_ticket", "stale_ticket"):
                await self._catch_up_releases()
                refusal = self._policy(command, sent)
        if refusal is not None:
            self._audit(command, "refused", refusal.code, refusal.detail, partition, offset)
            return await self._ack(command.command_id, command.workflow, "refused", str(refusal))
        state = self.book.apply(command, self.clock(), partition, offset)
        await self._publish_state(state)
        await self._sync_redis(command.workflow)
        self.workflows.set(len(self.known_workflows()))
        self._audit(command, "applied", "applied", f"{command.action}: {len(command.flags)} flag(s)", partition, offset)
        if self.notifier is not None:
            self.notifier.post(notice_for_command(command))
        return await self._ack(command.command_id, command.workflow, "applied", None)

    def _policy(self, command: RollbackCommand, sent: datetime | None) -> Refusal | None:
        current = self.effective(command.workflow, command.segment)
        return self.checker.check_policy(command, self.clock(), dict(current) if current else None, sent)

    def signed_layers(self, workflow: str) -> dict[str, Any] | None:
        """The workflow's flags document as it is (or would be) on the flags topic, signed."""
        state = self.book.get(workflow)
        return orjson.loads(self.document(state)) if state is not None else None

    async def _publish_state(self, state: WorkflowFlags) -> None:
        assert self._producer is not None
        sent = await send_retrying(
            self._producer,
            self.settings.topic_flags,
            self.document(state),
            state.workflow.encode(),
            lambda: self._stopping,
            lambda exc: log.error("flag store %s: cannot write flags of %r: %s", self.name, state.workflow, exc),
        )
        if not sent:
            log.error("flag store %s: stopped before flags of %r were written", self.name, state.workflow)

    async def _sync_redis(self, workflow: str | None) -> None:
        if self.redis is None or workflow is None:
            return
        state = self.book.get(workflow) or WorkflowFlags(workflow)
        try:
            await self.redis.write(state, self.base(workflow))
        except Exception:  # Redis is a materialization: Kafka holds the truth; retry on the next loop
            self.redis_errors.inc()
            self._redis_dirty.add(workflow)
            log.warning("flag store %s: cannot write %r to Redis", self.name, workflow, exc_info=True)
        else:
            self._redis_dirty.discard(workflow)

    async def _ack(self, command_id: str, workflow: str | None, status: Outcome, detail: str | None) -> ControlAck:
        ack = ControlAck(
            command_id=command_id,
            consumer=self.name,
            applied_at=self.clock(),
            workflow=workflow,
            status=status,
            detail=detail[:4096] if detail else None,
        )
        if self._producer is not None:
            key = (workflow or command_id).encode()
            await send_retrying(self._producer, self.settings.topic_acks, encode_ack(ack), key, lambda: self._stopping)
        return ack

    def _audit(
        self,
        command: RollbackCommand,
        outcome: Outcome,
        code: str,
        detail: str,
        partition: int | None,
        offset: int | None,
    ) -> None:
        self.outcomes.labels(outcome, code).inc()
        log.log(
            logging.INFO if outcome != "refused" else logging.WARNING,
            "command %s for %r: %s (%s)",
            command.command_id,
            command.workflow,
            outcome,
            detail,
        )
        self.audit.record(
            AuditRecord(
                at=rfc3339(self.clock()),
                outcome=outcome,
                code=code,
                detail=detail,
                command_id=command.command_id,
                workflow=command.workflow,
                segment=command.segment,
                action=command.action,
                issued_by=command.issued_by,
                issued_at=rfc3339(command.issued_at),
                ticket=command.ticket.model_dump(),
                key_id=command.signature.key_id if command.signature else None,
                flags=dict(command.flags),
                partition=partition,
                offset=offset,
            )
        )

    def _audit_document(
        self, subject: Subject, code: str, detail: str, workflow: str | None, partition: int, offset: int
    ) -> None:
        self.refused_documents.labels(subject, code).inc()
        self.audit.record(
            AuditRecord(
                at=rfc3339(self.clock()),
                outcome="refused",
                code=code,
                detail=detail,
                command_id=None,
                workflow=workflow,
                partition=partition,
                offset=offset,
                subject=subject,
            )
        )

    def _audit_raw(
        self, refusal: Refusal, command_id: str | None, workflow: str | None, partition: int | None, offset: int | None
    ) -> None:
        self.outcomes.labels("refused", refusal.code).inc()
        log.warning("control message %s@%s refused: %s", partition, offset, refusal)
        self.audit.record(
            AuditRecord(
                at=rfc3339(self.clock()),
                outcome="refused",
                code=refusal.code,
                detail=refusal.detail,
                command_id=command_id,
                workflow=workflow,
                partition=partition,
                offset=offset,
            )
        )
