"""The worker's state and logic, with no faust in it: engines per workflow, tickets, dedup.

Everything here is synchronous and does no I/O: methods take consumed records and return
the messages to produce (:class:`~rollwatch.agents.records.Outgoing`). The faust glue in
:mod:`rollwatch.agents.app` decides when to call them and in which order the results are
delivered, which is what the commit-order guarantee rests on.

Engines are isolated from each other: an exception from one workflow's engine is logged
and counted (``rollwatch_engine_errors``) and the other workflows go on.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Collection, Iterable, Iterator, Sequence

from aiokafka.partitioner import DefaultPartitioner

from rollwatch.admission import admit
from rollwatch.agents.backlog import Backlog
from rollwatch.agents.checkpoint import decode_checkpoint, encode_checkpoint
from rollwatch.agents.deadletter import dead_letter
from rollwatch.agents.errors import CheckpointError
from rollwatch.agents.metrics import Metrics
from rollwatch.agents.ports import EngineFactory
from rollwatch.agents.records import BoundedSet, Fold, Judgement, Outgoing, Slot, SourceRecord, Topics
from rollwatch.agents.releases import ReleaseGate
from rollwatch.commands import encode_command
from rollwatch.errors import InvalidEventError
from rollwatch.events import DecodedMessage, Event, Rejected, decode_message
from rollwatch.trust import Keyring
from rollwatch.trust.releases import ReleaseRefused

__all__ = ["BoundedSet", "Fold", "Judgement", "Runtime", "Slot", "Topics"]

log = logging.getLogger(__name__)
_partitioner = DefaultPartitioner()


@functools.lru_cache(maxsize=1 << 16)
def _murmur2_partition(key: bytes, partitions: int) -> int:
    # Cached: checked for every record (misrouting metric), and murmur2 in Python costs ~10-25 us.
    every = list(range(partitions))
    return int(_partitioner(key, every, every))


def _group(events: list[Event]) -> Iterable[tuple[str, list[Event]]]:
    """Events of one message by workflow; one message nearly always holds one workflow."""
    first = events[0].workflow
    for event in events:
        if event.workflow != first:
            break
    else:
        return ((first, events),)
    groups: dict[str, list[Event]] = {}
    for event in events:
        groups.setdefault(event.workflow, []).append(event)
    return groups.items()


def _text(key: bytes | None) -> str:
    return key.decode("utf-8", "replace") if key else "unknown"


class Runtime:
    """Engines held in memory, keyed by workflow; created on first event or restored from checkpoints."""

    def __init__(
        self,
        factory: EngineFactory,
        *,
        topics: Topics,
        partitions: int,
        metrics: Metrics,
        worker: str,
        max_command_ids: int = 100_000,
        apply_every: int = 8192,
        keyring: Keyring | None = None,
    ) -> None:
        self.factory = factory
        self.releases = ReleaseGate(keyring)
        """Only signed tickets (keys trusted for tickets) reach the engines; refusals are remembered."""
        self.apply_every = apply_every
        """Events decoded before they are handed to engines: bounds memory and GC work per batch."""
        self.topics = topics
        self.partitions = partitions
        self.metrics = metrics
        self.worker = worker
        self.slots: dict[str, Slot] = {}
        self.tickets: dict[str, bytes] = {}
        self.sent = BoundedSet(max_command_ids)
        self._sweep: list[str] = []
        """Workflows the judge timer has still to visit in the current round (next one last)."""
        self.assigned: frozenset[int] | None = None
        self.recovered = False
        self.positions: dict[int, int] = {}
        self._restored: set[str] = set()
        """Workflows restored from checkpoints since the last assignment (their offsets are current)."""
        self.dirty: dict[str, Slot] = {}
        """Workflows whose state is ahead of their last checkpoint (see :meth:`unsaved`)."""
        self.backlog = Backlog()
        """Partitions with telemetry still waiting: their engines judge on event time only."""
        self.totals = {
            "messages": 0,
            "events": 0,
            "batches": 0,
            "replayed": 0,
            "deadletters": 0,
            "commands": 0,
            "ticks": 0,
        }
        self.first_batch_at: float | None = None
        self.last_batch_at: float | None = None

    # -- ownership -------------------------------------------------------------------------

    def key_partition(self, workflow: str) -> int:
        """The telemetry partition a producer with the default (murmur2) partitioner picks for this key."""
        return _murmur2_partition(workflow.encode(), self.partitions)

    def owns(self, workflow: str) -> bool:
        if workflow in self.slots:
            return True
        return self.assigned is not None and self.key_partition(workflow) in self.assigned

    def on_assigned(self, partitions: Collection[int]) -> None:
        """A new generation's assignment: forget engines whose partition went elsewhere.

        Done at every assignment (not only after recovery), so an engine can never outlive a
        generation in which another worker owned its partition and moved its state on.
        """
        self.assigned = frozenset(partitions)
        self.recovered = False
        self._restored.clear()
        self.backlog.forget()
        for workflow in [w for w, s in self.slots.items() if s.home not in self.assigned]:
            del self.slots[workflow]
            self.dirty.pop(workflow, None)
        log.info("assigned telemetry partitions %s; %d engines kept", sorted(self.assigned), len(self.slots))

    def on_recovered(self, checkpoints: Iterable[tuple[bytes, bytes]]) -> None:
        """The state table is up to date for our partitions: restore engines we do not hold."""
        assigned = self.assigned or frozenset()
        restored = 0
        for key, value in checkpoints:
            workflow = key.decode("utf-8", "replace")
            if workflow in self.slots or value is None:
                continue
            try:
                checkpoint = decode_checkpoint(value)
            except CheckpointError as exc:
                log.error("state of workflow %r is unreadable, starting it afresh: %s", workflow, exc)
                continue
            if checkpoint.home not in assigned:
                continue
            try:
                engine = self.factory.restore(checkpoint.engine)
            except Exception:
                log.exception("cannot restore the engine of workflow %r; starting it afresh", workflow)
                self.metrics.engine_errors.labels(self.metrics.workflow(workflow), "restore").inc()
                continue
            slot = Slot(workflow, engine, checkpoint.home, dict(checkpoint.applied))
            self.slots[workflow] = slot
            self._restored.add(workflow)
            self._install_ticket(slot)
            restored += 1
        for workflow in list(self.tickets):
            if workflow not in self.slots and self.owns(workflow):
                self._create(workflow, self.key_partition(workflow))
        self.recovered = True
        log.info("recovered %d engines from the state table; %d engines in all", restored, len(self.slots))

    def on_offsets_lost(self, partitions: Collection[int]) -> None:
        """The group has no committed offset for these partitions; the consumer rewinds them.

        For an engine restored from a checkpoint that is the normal crash-before-first-commit
        case and its offsets make the replay harmless. An engine that was kept in memory
        across the rebalance, though, applied messages of these partitions and they were
        committed at the revocation, so their offsets vanishing means the log itself was
        recreated (an in-memory broker restarted empty, a topic deleted): offsets of the old
        log mean nothing in the new one and would make the worker skip its first messages.
        """
        lost = set(partitions)
        for slot in self.slots.values():
            if slot.workflow in self._restored:
                continue
            stale = sorted(p for p in slot.applied if p in lost)
            if stale:
                log.warning(
                    "workflow %r: partitions %s lost their committed offsets (log recreated?); "
                    "forgetting the offsets its state was built from",
                    slot.workflow,
                    stale,
                )
                for partition in stale:
                    del slot.applied[partition]

    # -- engines ---------------------------------------------------------------------------

    def _create(self, workflow: str, home: int, *, install: bool = True) -> Slot | None:
        try:
            engine = self.factory.new(workflow)
        except Exception:
            log.exception("cannot create an engine for workflow %r", workflow)
            self.metrics.engine_errors.labels(self.metrics.workflow(workflow), "new").inc()
            return None
        slot = self.slots[workflow] = Slot(workflow, engine, home)
        if install:
            self._install_ticket(slot)
        return slot

    def _install_ticket(self, slot: Slot) -> Exception | None:
        ticket = self.tickets.get(slot.workflow)
        if ticket is None or ticket == slot.ticket:
            return None
        try:
            slot.engine.set_ticket(ticket)
        except Exception as exc:
            log.warning("ticket of workflow %r refused: %s", slot.workflow, exc)
            return exc
        slot.ticket = ticket
        return None

    # -- telemetry -------------------------------------------------------------------------

    @staticmethod
    def _decode(record: SourceRecord, now_ms: int) -> DecodedMessage:
        if record.value is None:
            return DecodedMessage([], [Rejected(None, InvalidEventError("", "message has no value"), b"")])
        decoded = decode_message(record.value)
        # Wall clock and message key are the receiver's to own (see rollwatch.admission).
        key = record.key.decode("utf-8", "replace") if record.key else None
        return admit(decoded, now_ms, key, batch=record.value.lstrip()[:1] == b"[")

    def fold(self, records: Sequence[SourceRecord]) -> Fold:
        """Decode a batch, dead-letter what is rejected, apply the rest engine by engine."""
        started = time.time()
        now_ms = int(started * 1000)
        metrics = self.metrics
        deadletters: list[Outgoing] = []
        rejected_from: list[SourceRecord] = []
        first_problem = ""
        touched: dict[str, Slot] = {}
        waiting = applied = 0
        assigned = self.assigned
        for record in records:
            if assigned is not None and record.partition not in assigned:
                # faust drops messages of an older generation before they reach us; this is a
                # second line of defence against creating engines for partitions we do not own.
                log.warning("skipping %s[%d]@%d: partition not assigned", record.topic, record.partition, record.offset)
                continue
            self.positions[record.partition] = record.offset
            try:
                decoded = self._decode(record, now_ms)
            except Exception as exc:  # a validator bug must cost one message, not the worker
                log.exception("unexpected error decoding %s[%d]@%d", record.topic, record.partition, record.offset)
                error = InvalidEventError("", f"internal error while decoding: {exc!r}")
                decoded = DecodedMessage([], [Rejected(None, error, record.value or b"")])
            if decoded.rejected:
                if not rejected_from:
                    error = decoded.rejected[0].error
                    first_problem = f"{record.topic}[{record.partition}]@{record.offset} {error}"
                rejected_from.append(record)
                label = metrics.workflow(_text(record.key))
                metrics.invalid.labels(label).inc(len(decoded.rejected))
                for rejected in decoded.rejected:
                    deadletters.append(
                        dead_letter(
                            self.topics.deadletter,
                            record,
                            reason=str(rejected.error),
                            field=rejected.error.field,
                            index=rejected.index,
                            raw=rejected.raw if rejected.index is not None else record.value,
                        )
                    )
            if not decoded.events:
                continue
            for workflow, events in _group(decoded.events):
                if self.key_partition(workflow) != record.partition:  # docs/control-protocol.md, Partitioning
                    metrics.misrouted.labels(metrics.workflow(workflow)).inc(len(events))
                slot = self.slots.get(workflow) or self._create(workflow, record.partition)
                if slot is None:
                    continue
                if record.offset <= slot.applied.get(record.partition, -1):
                    metrics.replayed.labels(metrics.workflow(workflow)).inc(len(events))
                    self.totals["replayed"] += len(events)
                    continue
                if slot.home != record.partition:
                    log.warning(
                        "workflow %r moves from partition %d to %d: is telemetry keyed by workflow?",
                        workflow,
                        slot.home,
                        record.partition,
                    )
                    slot.home = record.partition
                slot.pending.extend(events)
                slot.applied[record.partition] = record.offset
                touched[workflow] = slot
                self._dirty(slot)
                waiting += len(events)
            if waiting >= self.apply_every:
                applied += self._apply_pending(touched.values())
                waiting = 0
        applied += self._apply_pending(touched.values())
        metrics.messages.inc(len(records))
        metrics.batches.inc()
        if deadletters:
            metrics.deadletters.labels("telemetry").inc(len(deadletters))
            log.warning(
                "%d of %d messages had rejected events: %d dead-lettered (first: %s)",
                len(rejected_from),
                len(records),
                len(deadletters),
                first_problem,
            )
        totals = self.totals
        totals["messages"] += len(records)
        totals["events"] += applied
        totals["batches"] += 1
        totals["deadletters"] += len(deadletters)
        if self.first_batch_at is None:
            self.first_batch_at = started
        self.last_batch_at = time.time()
        return Fold(deadletters, list(touched.values()), applied)

    def _apply_pending(self, slots: Iterable[Slot]) -> int:
        """Hand the events collected so far to their engines (in offset order, per workflow)."""
        metrics = self.metrics
        applied = 0
        for slot in slots:
            if not slot.pending:
                continue
            events, slot.pending = slot.pending, []
            label = metrics.workflow(slot.workflow)
            try:
                stats = slot.engine.apply(events)
            except Exception:
                log.exception("engine of workflow %r failed on %d events", slot.workflow, len(events))
                metrics.engine_errors.labels(label, "apply").inc()
                continue
            applied += len(events)
            metrics.events.labels(label).inc(len(events))
            if stats.late:
                metrics.late.labels(label).inc(stats.late)
            if stats.duplicates:
                metrics.duplicates.labels(label).inc(stats.duplicates)
        return applied

    def sweep(self, budget_s: float) -> Iterator[Slot]:
        """Slots in turn, from where the previous sweep stopped, until ``budget_s`` has passed.

        Feed it to :meth:`judge`, which evaluates each slot before asking for the next, so the
        budget bounds the time a timer tick holds the event loop. Judging every engine on every
        tick cost ~1 ms per workflow once windows fill: 6 to 18 s per tick at 10,000 workflows
        (bench/bench_load_worker.py), the loop blocked longer than the session timeout and the
        worker mostly ticking. Time-based gates need each workflow visited now and then, not
        every second; workflows with traffic are judged after every batch anyway. At least one
        slot per call, so a round always ends.
        """
        if not self._sweep:
            self._sweep = list(self.slots)
            self._sweep.reverse()
        deadline = time.perf_counter() + budget_s
        yielded = False
        while self._sweep and (not yielded or time.perf_counter() < deadline):
            slot = self.slots.get(self._sweep.pop())
            if slot is not None:
                yielded = True
                yield slot

    def judge(self, slots: Iterable[Slot], now_ms: int) -> Judgement:
        """Evaluate gates at ``now_ms``; commands not yet sent by this process, to publish."""
        metrics = self.metrics
        commands: list[Outgoing] = []
        emitted: list[Slot] = []
        breaches: list[int] = []
        for slot in slots:
            label = metrics.workflow(slot.workflow)
            try:
                emissions = slot.engine.evaluate(now_ms, backlog=self.backlog.waiting(slot.home))
            except Exception:
                log.exception("engine of workflow %r failed to evaluate", slot.workflow)
                metrics.engine_errors.labels(label, "evaluate").inc()
                continue
            for emission in emissions:
                command = emission.command
                metrics.decisions.labels(label, command.action).inc()
                if command.command_id in self.sent:
                    metrics.suppressed.labels(label).inc()
                    continue
                try:
                    value = encode_command(command)
                except Exception:
                    log.exception("command %r of workflow %r cannot be encoded", command.command_id, slot.workflow)
                    metrics.engine_errors.labels(label, "encode").inc()
                    continue
                self.sent.add(command.command_id)
                commands.append(Outgoing(self.topics.control, slot.workflow.encode(), value))
                metrics.commands.labels(label, command.action).inc()
                breaches.append(emission.breach_ts_ms)
                self.totals["commands"] += 1
                log.warning(
                    "command %s (%s) for workflow %r, gate %s",
                    command.command_id,
                    command.action,
                    slot.workflow,
                    command.reason.gate,
                )
                if not emitted or emitted[-1] is not slot:
                    emitted.append(slot)
                    self._dirty(slot)
        return Judgement(commands, emitted, breaches)

    def touched(self, slot: Slot) -> None:
        """``slot``'s engine changed outside a batch (a person's command): checkpoint it."""
        self._dirty(slot)

    def _dirty(self, slot: Slot) -> None:
        slot.dirty = True
        self.dirty[slot.workflow] = slot

    def unsaved(self) -> list[Slot]:
        """Workflows held in memory whose state is ahead of their last checkpoint."""
        return [slot for workflow, slot in self.dirty.items() if self.slots.get(workflow) is slot]

    def rewrite(self, partitions: Collection[int]) -> int:
        """Mark every engine held for these partitions unsaved, so the next checkpoint writes it anew."""
        slots = [slot for slot in self.slots.values() if slot.home in partitions]
        for slot in slots:
            self._dirty(slot)
        return len(slots)

    def saved(self, slots: Iterable[Slot]) -> None:
        """These checkpoints are acked by the broker: their slots are clean until touched again."""
        for slot in slots:
            slot.dirty = False
            if self.dirty.get(slot.workflow) is slot:
                del self.dirty[slot.workflow]

    def checkpoint(self, slots: Iterable[Slot]) -> list[Outgoing]:
        """State-table records for these workflows, each to its home (changelog) partition."""
        out: list[Outgoing] = []
        for slot in slots:
            try:
                state = slot.engine.to_bytes()
            except Exception:
                log.exception("engine of workflow %r cannot checkpoint", slot.workflow)
                self.metrics.engine_errors.labels(self.metrics.workflow(slot.workflow), "to_bytes").inc()
                continue
            value = encode_checkpoint(slot.home, slot.applied, state)
            out.append(Outgoing(self.topics.changelog, slot.workflow.encode(), value, slot.home))
        self.metrics.checkpoints.inc(len(out))
        return out

    # -- tickets ---------------------------------------------------------------------------

    def on_ticket(self, record: SourceRecord) -> list[Outgoing]:
        """Install a ticket from the releases topic if we own its workflow; dead letters if it is bad."""
        metrics = self.metrics

        def reject(reason: str, field: str | None = None) -> list[Outgoing]:
            metrics.tickets.labels("rejected").inc()
            metrics.deadletters.labels("releases").inc()
            return [
                dead_letter(self.topics.deadletter, record, reason=reason, field=field, index=None, raw=record.value)
            ]

        if not record.key:
            return reject("a release ticket must be keyed by its workflow")
        try:
            workflow = record.key.decode("utf-8")
        except UnicodeDecodeError:
            return reject("the key of a release ticket must be a UTF-8 workflow name")
        try:
            release = self.releases.admit(workflow, record.key, record.value)
        except ReleaseRefused as exc:
            metrics.ticket_refusals.labels(exc.code).inc()
            log.warning("ticket record for %r refused (%s); the one in force stays: %s", workflow, exc.code, exc)
            return reject(f"ticket refused ({exc.code}): {exc}")
        prior = self.releases.took(workflow, release)
        if release.text is None:
            self.tickets.pop(workflow, None)
            metrics.tickets.labels("deleted").inc()
            log.info("ticket of workflow %r retired by %s; its engine keeps the last one", workflow, release.author)
            return []
        self.tickets[workflow] = release.text
        if not self.recovered or not self.owns(workflow):
            # Mid-rebalance a fresh engine would shadow the checkpoint about to be restored;
            # on_recovered installs stored tickets on the engines it restores or creates.
            metrics.tickets.labels("stored").inc()
            return []
        slot = self.slots.get(workflow) or self._create(workflow, self.key_partition(workflow), install=False)
        if slot is None:
            return reject("no engine could be created for this workflow")
        if slot.ticket == release.text:
            metrics.tickets.labels("unchanged").inc()
            return []
        error = self._install_ticket(slot)
        if error is not None:
            self.releases.undo(workflow, prior)
            return reject(str(error) or type(error).__name__, getattr(error, "field", None))
        metrics.tickets.labels("applied").inc()
        log.info("ticket of workflow %r installed (%d bytes, by %s)", workflow, len(release.text), release.author)
        return []
