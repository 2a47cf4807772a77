"""The flag store: applies verified rollback commands and publishes the flags in force.

Per command, in control-topic order (the shared steps are
:class:`~rollwatch.control.consumer.ControlConsumer`'s): verify (signature, then "seen
before?", then expiry, ticket and authority), apply to the per-workflow state, write the
state to the compacted flags topic (the durable truth it rebuilds from) and to Redis,
audit, ack, then commit the control offset. A crash between any two steps is harmless:
the state document remembers the command ids it contains, so the re-read command is a
duplicate.

Nothing unsigned changes its flags: tickets must be signed by a key trusted for tickets
(a refused one is audited, counted and leaves the previous ticket in force), and it
rebuilds at start only from flag documents signed by a key trusted for flags (its own),
so a forged document can neither set flags nor erase the applied command ids.

After a broker loss the flags topic comes back empty while Redis still holds the
rolled-back values. The topic is the truth for every workflow it holds; a workflow it
lacks is taken back from the signed document kept in its Redis hash and re-published,
so a rollback is never silently undone; an unverifiable Redis copy is refused, counted
and audited, never served (:mod:`rollwatch.flagstore.reconcile`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from rollwatch.commands import RollbackCommand, rfc3339
from rollwatch.control.consumer import ControlConsumer, Verdict
from rollwatch.control.state import FlagBook, FlagMap, WorkflowFlags
from rollwatch.control.topics import send_retrying
from rollwatch.control.verify import TicketBook
from rollwatch.flagstore.audit import AuditLog, AuditRecord, Outcome, Subject
from rollwatch.flagstore.reconcile import Reconciliation, take_back
from rollwatch.flagstore.redis_sink import RedisFlags
from rollwatch.notify import Notifier, notice_for_command
from rollwatch.settings import Settings
from rollwatch.signing import Keyring, signing_key_from_settings
from rollwatch.tickets import Ticket, TicketError, candidate_flags
from rollwatch.trust.releases import ReleaseRefused

__all__ = ["FlagStore"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FlagStore(ControlConsumer):
    """One flag store process. ``start()`` rebuilds state and starts consuming; ``stop()`` ends it."""

    kind = "flag store"
    ack_waits = True

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
        super().__init__(
            settings,
            name=name,
            book=FlagBook(),
            tickets=TicketBook(),
            keys=keys,
            clock=clock,
            group_id=f"rollwatch.flagstore.{name}",
            tail_flags=False,
            start_at="beginning",
        )
        self.notifier = notifier if notifier is not None else Notifier.from_settings(settings)
        """Told of every applied command (issue 14); posting never waits on a webhook."""
        self.redis = redis
        self.audit = audit if audit is not None else AuditLog(settings.flagstore_audit_path)
        self.signer = signing_key_from_settings(settings, self.keyring if settings.keyring_file else None)
        if self.signer is None:
            log.warning("flag store %s has no signing key: readers will refuse the flag documents it writes", name)
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
        self.reconciled = Counter(
            "rollwatch_flagstore_redis_reconciled",
            "Workflows the flags topic lacked at start, by what was done with their Redis copy",
            ["outcome", "code"],
            registry=self.registry,
        )
        self.reconciliation = Reconciliation()
        """What the last start took back from Redis and what it refused (``/healthz``)."""
        self._redis_dirty: set[str] = set()
        self._flags_dirty: set[str] = set()
        """Workflows whose ticket changed: their flags document (flags in force) is republished."""

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

    def current_flags(self, workflow: str, segment: str | None) -> FlagMap | None:
        return self.effective(workflow, segment)

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

    def signed_layers(self, workflow: str) -> dict[str, Any] | None:
        """The workflow's flags document as it is (or would be) on the flags topic, signed."""
        state = self.book.get(workflow)
        return orjson.loads(self.document(state)) if state is not None else None

    # -- lifecycle hooks -----------------------------------------------------------------------

    async def after_start(self) -> None:
        await self._reconcile_with_redis()
        for workflow in self.known_workflows():
            await self._sync_redis(workflow)
        self.workflows.set(len(self.known_workflows()))
        if self.notifier is not None:
            await self.notifier.start()

    async def stop(self) -> None:
        await super().stop()
        if self.notifier is not None:
            await self.notifier.stop()

    async def after_batch(self) -> None:
        for workflow in sorted(self._flags_dirty):
            self._flags_dirty.discard(workflow)
            await self._publish_state(self.book.get(workflow) or WorkflowFlags(workflow))
        for workflow in list(self._redis_dirty):
            await self._sync_redis(workflow)

    async def on_reset(self, rewound: list[TopicPartition]) -> None:
        """A broker that came back empty lost the flags topic too: write every workflow's document again.

        Otherwise a gateway started after the loss would find no document and serve the
        ticket's candidate, although this store still holds (and serves) the rollback.
        """
        if any(tp.topic in (self.settings.topic_flags, self.settings.topic_control) for tp in rewound):
            log.warning("flag store %s: the broker lost its log; re-publishing every flags document", self.name)
            self._flags_dirty.update(self.book.workflows)

    def on_skipped(self, tp: Any, offset: int, exc: BaseException) -> None:
        super().on_skipped(tp, offset, exc)
        self.undecodable.labels(tp.topic).inc()

    # -- after a broker loss -------------------------------------------------------------------

    async def _reconcile_with_redis(self) -> None:
        """Take back from Redis the verified documents of workflows the flags topic lost."""
        if self.redis is None:
            return
        try:
            documents = await self.redis.documents()
        except Exception:  # Redis down: nothing to compare with; the topic stays the only source
            self.redis_errors.inc()
            log.warning("flag store %s: cannot read Redis to reconcile with the flags topic", self.name, exc_info=True)
            return
        adopted, refused = take_back(documents, set(self.book.workflows), self.keyring)
        self.reconciliation = Reconciliation([s.workflow for s in adopted], refused)
        for state in adopted:
            self.book.load(state)
            self.reconciled.labels("adopted", "verified").inc()
            detail = f"the flags topic lacked it; taken back from Redis (version {state.version}) and re-published"
            log.warning("flag store %s: %r: %s", self.name, state.workflow, detail)
            self._audit_document("redis", "applied", "reconciled", detail, state.workflow, None, None)
            await self._publish_state(state)
        for refusal in refused:
            self.reconciled.labels("refused", refusal.code).inc()
            detail = f"Redis copy not taken back: {refusal.detail}"
            log.error("flag store %s: %r: %s", self.name, refusal.workflow, detail)
            self._audit_document("redis", "refused", refusal.code, detail, refusal.workflow, None, None)
            if refusal.workflow not in self.known_workflows():
                await self._delete_redis(refusal.workflow)

    # -- releases and flag documents -----------------------------------------------------------

    def on_ticket(self, record: Any, ticket: Ticket | None) -> None:
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

    def on_ticket_refused(self, record: Any, exc: ReleaseRefused | TicketError) -> None:
        super().on_ticket_refused(record, exc)
        code = exc.code if isinstance(exc, ReleaseRefused) else "malformed"
        workflow = record.key.decode("utf-8", "replace") if record.key else None
        self._audit_document("ticket", "refused", code, str(exc), workflow, record.partition, record.offset)

    def on_flag_state(self, state: WorkflowFlags) -> None:
        self.book.load(state)  # at start, in topic order: the latest verified document wins

    def on_flags_refused(self, record: Any, code: str, detail: str) -> None:
        super().on_flags_refused(record, code, detail)
        workflow = record.key.decode("utf-8", "replace") if record.key else None
        self._audit_document("flags", "refused", code, detail, workflow, record.partition, record.offset)

    # -- commands ------------------------------------------------------------------------------

    async def apply_command(self, command: RollbackCommand, partition: int | None, offset: int | None) -> None:
        state = self.book.apply(command, self.clock(), partition, offset)
        await self._publish_state(state)
        await self._sync_redis(command.workflow)
        self.workflows.set(len(self.known_workflows()))

    def on_verdict(self, verdict: Verdict) -> None:
        super().on_verdict(verdict)
        refusal = verdict.refusal
        detail = refusal.detail if refusal is not None else verdict.detail
        if verdict.command is None:
            self._audit_raw(
                verdict.code, detail, verdict.command_id, verdict.workflow, verdict.partition, verdict.offset
            )
            return
        self._audit(verdict.command, verdict.status, verdict.code, detail, verdict.partition, verdict.offset)
        if verdict.status == "applied" and self.notifier is not None:
            self.notifier.post(notice_for_command(verdict.command))

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
            await self.redis.write(state, self.base(workflow), self.document(state))
        except Exception:  # Redis is a materialization: Kafka holds the truth; retry on the next loop
            self.redis_errors.inc()
            self._redis_dirty.add(workflow)
            log.warning("flag store %s: cannot write %r to Redis", self.name, workflow, exc_info=True)
        else:
            self._redis_dirty.discard(workflow)

    async def _delete_redis(self, workflow: str) -> None:
        assert self.redis is not None
        try:
            await self.redis.delete(workflow)
        except Exception:
            self.redis_errors.inc()
            log.warning("flag store %s: cannot delete the refused Redis copy of %r", self.name, workflow, exc_info=True)

    # -- audit ---------------------------------------------------------------------------------

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
        if outcome != "refused":  # the base logged the refusal
            log.info("command %s for %r: %s (%s)", command.command_id, command.workflow, outcome, detail)
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
        self,
        subject: Subject,
        outcome: Outcome,
        code: str,
        detail: str,
        workflow: str | None,
        partition: int | None,
        offset: int | None,
    ) -> None:
        if outcome == "refused" and subject != "redis":
            self.refused_documents.labels(subject, code).inc()
        self.audit.record(
            AuditRecord(
                at=rfc3339(self.clock()),
                outcome=outcome,
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
        self,
        code: str,
        detail: str,
        command_id: str | None,
        workflow: str | None,
        partition: int | None,
        offset: int | None,
    ) -> None:
        self.outcomes.labels("refused", code).inc()
        self.audit.record(
            AuditRecord(
                at=rfc3339(self.clock()),
                outcome="refused",
                code=code,
                detail=detail,
                command_id=command_id,
                workflow=workflow,
                partition=partition,
                offset=offset,
            )
        )
