"""The workflow engine: one workflow's windows, its release ticket and the judge's memory.

This is the single implementation of "events in, commands out". The faust worker
calls it per batch and on a timer, and ``rollwatch replay`` calls it per file chunk, so
a recorded incident replays to the same decisions the live worker made. It satisfies
:class:`rollwatch.agents.ports.WorkflowEngine`.

Gates scoped to a ``segment`` read a second :class:`WorkflowState` that is fed only
that segment's events. A ``by_segment`` gate reads one such state per segment seen
(at most ``MAX_SEGMENTS``; traffic of further segments still counts workflow-wide) and
breaches per segment, so "disable the workflow for affected segments" names them.
This keeps the per-route windows segment-agnostic.

Judging on event time. The worker judges after every batch and on a wall-clock timer,
which is enough while it keeps up. A worker that starts behind reads minutes of
telemetry in one batch, and judging only once at its end would skip every decision in
between: a breach that had recovered by then would never be acted on, although the
live worker (and ``rollwatch replay``) would have acted on it. An engine built with
``judge_every_ms`` (the worker's factories) therefore also judges on the event-time
grid that replay uses (every ``JUDGE_EVERY_MS`` from the first event, with exactly the
events before each grid point folded in) while it applies events, and hands what those
judgments emitted to the next :meth:`Engine.evaluate`. Commands are issued on the wall
clock whatever the event time of their decision: a command's lifetime starts when it is
sent, or a worker catching up on an old backlog would emit commands already expired.

Checkpoint format: a 4-byte length, an orjson header (ticket bytes, judge memory,
release start, next event-time judgment), then the length-prefixed :meth:`WorkflowState.to_bytes` of the
workflow and of each segment. There is no pickle anywhere.
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, Final

import orjson

from rollwatch.commands import (
    CustomerMessage,
    Evidence,
    Reason,
    RollbackCommand,
    TicketRef,
    rfc3339,
)
from rollwatch.control.effects import plan_percents
from rollwatch.events import Event
from rollwatch.gates.bank import DetectorBank
from rollwatch.gates.errors import EngineStateError
from rollwatch.gates.evaluate import Arms, detector_bank, evaluate_gate
from rollwatch.gates.judge import JudgeMemory, judge
from rollwatch.gates.kinds import KINDS
from rollwatch.gates.manual import apply_manual, escalation_views
from rollwatch.gates.promotion import evaluate_promotion
from rollwatch.gates.result import ApplyStats, Decision, Emission, GateReading, GateResult, gate_json
from rollwatch.gates.shadow import ShadowComparison
from rollwatch.streams.config import StreamsConfig
from rollwatch.streams.workflow_state import WorkflowState
from rollwatch.tickets.load import load_ticket_bytes, ticket_to_json
from rollwatch.tickets.messages import customer_message
from rollwatch.tickets.model import Ticket

__all__ = [
    "COMMAND_TTL_MS",
    "JUDGE_EVERY_MS",
    "MAX_GRID_JUDGMENTS",
    "MAX_SEGMENTS",
    "Engine",
    "EngineFactoryImpl",
    "Signer",
    "streams_config_for",
]

Signer = Callable[[RollbackCommand], RollbackCommand]
"""Signs a command (see :mod:`rollwatch.signing`); consumers refuse unsigned ones."""

MAX_SEGMENTS: Final = 8

COMMAND_TTL_MS: Final = 60 * 60_000
"""A command older than this is refused by consumers; a fresh decision supersedes it."""
JUDGE_EVERY_MS: Final = 60_000
"""The event-time judging grid: ``rollwatch replay``'s default ``every_ms``, and the worker's."""

MAX_GRID_JUDGMENTS: Final = 24 * 60
"""Most grid points judged for one gap in event time (a day at ``JUDGE_EVERY_MS``).

An event stamped years after the previous one must not cost millions of judgments:
beyond this the grid jumps to the newest point before the event and judges there once.
"""

BEHIND_NOTE_MS: Final = 60_000
"""A command decided on telemetry this much older than its issue time says so in its detail."""
_FORMAT: Final = 1
_TS_MS: Final = attrgetter("ts_ms")


def streams_config_for(ticket: Ticket | None, base: StreamsConfig | None = None) -> StreamsConfig:
    """Count windows wide enough for every gate of the ticket (seed sizes at least); each kind names its own."""
    config = base or StreamsConfig()
    if ticket is None:
        return config
    sizes: dict[str, Any] = {}
    for gate in ticket.gates:
        for need in KINDS[gate.kind].windows(gate):
            sizes[need.config] = max(sizes.get(need.config, getattr(config, need.config)), need.size)
    return replace(config, **sizes)


class Engine:
    """Events in, commands out, for one workflow."""

    def __init__(
        self,
        workflow: str,
        *,
        config: StreamsConfig | None = None,
        signer: Signer | None = None,
        judge_every_ms: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._workflow = workflow
        self._signer = signer
        self._judge_every_ms = judge_every_ms
        self._clock = clock
        self.next_judge_ms: int | None = None
        """The next event-time grid point (only with ``judge_every_ms``)."""
        self._queued: list[Emission] = []
        self._queued_decisions: list[Decision] = []
        self._base_config = config or StreamsConfig()
        self.ticket: Ticket | None = None
        self._ticket_raw = b""
        self.state = WorkflowState(workflow, self._base_config)
        self.segments: dict[str, WorkflowState] = {}
        self._by_segment = False
        self.memory = JudgeMemory()
        self.detectors = DetectorBank()
        """The gates' change detectors, reset with each ticket revision (see :mod:`rollwatch.gates.detector`)."""
        self.release_start_ms: int | None = None
        self.shadow = ShadowComparison()
        self.last_results: list[GateResult] = []
        self.last_decisions: list[Decision] = []

    @property
    def workflow(self) -> str:
        return self._workflow

    # -- ticket ------------------------------------------------------------------------------

    def set_ticket(self, ticket: bytes) -> None:
        """Install a ticket from YAML/JSON bytes; raises :class:`TicketError` with every problem."""
        parsed = load_ticket_bytes(ticket, f"releases/{self._workflow}")
        self.install(parsed, ticket)

    def install(self, ticket: Ticket, raw: bytes = b"") -> None:
        if ticket.workflow != self._workflow:
            raise EngineStateError(f"ticket {ticket.ticket} governs {ticket.workflow!r}, not {self._workflow!r}")
        changed = self.ticket is None or (self.ticket.ticket, self.ticket.revision) != (ticket.ticket, ticket.revision)
        config = streams_config_for(ticket, self._base_config)
        if config != self.state.config:
            # Wider windows than the state was built with: start the windows afresh.
            self.state = WorkflowState(self._workflow, config)
        self.ticket, self._ticket_raw = ticket, raw or ticket_to_json(ticket)
        self.state.set_arms(control=ticket.control.route, candidate=ticket.candidate.route)
        self._by_segment = any(g.by_segment for g in ticket.gates)
        wanted = {g.segment for g in ticket.gates if g.segment is not None}
        if self._by_segment:
            wanted |= set(self.segments)
        self.segments = {s: self.segments.get(s) or self._segment_state(config) for s in wanted}
        for segment_state in self.segments.values():
            segment_state.set_arms(control=ticket.control.route, candidate=ticket.candidate.route)
        if changed:
            self.release_start_ms = self.state.max_ts_ms
            self.detectors = detector_bank(ticket)

    # -- events ------------------------------------------------------------------------------

    def apply(self, events: Sequence[Event]) -> ApplyStats:
        """Fold events in; with ``judge_every_ms``, judge at each event-time grid point they cross."""
        every = self._judge_every_ms
        if every is None or not events:
            return self._fold(events)
        if self.next_judge_ms is not None and max(map(_TS_MS, events)) < self.next_judge_ms:
            return self._fold(events)  # the common case: no grid point inside the batch (max runs in C)
        applied = late = duplicates = 0
        start = 0
        for i, event in enumerate(events):
            if self.next_judge_ms is None:
                self.next_judge_ms = event.ts_ms + every
            elif event.ts_ms >= self.next_judge_ms:
                # Judge with exactly the events before the grid point folded in, as replay does.
                stats = self._fold(events[start:i])
                applied, late, duplicates = applied + stats.applied, late + stats.late, duplicates + stats.duplicates
                start = i
                gap = (event.ts_ms - self.next_judge_ms) // every
                if gap >= MAX_GRID_JUDGMENTS:
                    self.next_judge_ms += gap * every
                while event.ts_ms >= self.next_judge_ms:
                    self._judge_on_event_time(self.next_judge_ms)
                    self.next_judge_ms += every
        stats = self._fold(events[start:])
        return ApplyStats(applied + stats.applied, late + stats.late, duplicates + stats.duplicates)

    def can_decide(self) -> bool:
        """False while judging cannot decide anything: the candidate arm has seen no event yet.

        Every gate reads the candidate, so until it has traffic each one reports
        ``insufficient`` and the judge neither rolls back nor promotes (promotion needs every
        gate healthy). Replay and the event-time grid skip those judgments: a recorded week
        of control-only history would otherwise cost a judgment per minute of it.
        """
        if self.ticket is None:
            return False
        cand = self.state.candidate
        return cand is not None and (cand.calls > 0 or cand.reviews > 0 or cand.complaints > 0)

    def _judge_on_event_time(self, at_ms: int) -> None:
        if not self.can_decide():
            return
        self._queued.extend(self._evaluate(at_ms))
        self._queued_decisions.extend(self.last_decisions)

    def _fold(self, events: Sequence[Event]) -> ApplyStats:
        if not events:
            return ApplyStats(0, 0, 0)
        result = self.state.apply_many(events)
        if self.state.arm_route("shadow") is not None:
            # Only workflows running a shadow pay for pairing.
            update = self.shadow.update
            for event in events:
                update(event)
        if self.segments or self._by_segment:
            for event in events:
                if not event.segment:
                    continue
                segment_state = self.segments.get(event.segment)
                if segment_state is None and self._by_segment and len(self.segments) < MAX_SEGMENTS:
                    segment_state = self.segments[event.segment] = self._segment_state(self.state.config)
                if segment_state is not None:
                    segment_state.apply(event)
        if self.ticket is not None and self.release_start_ms is None:
            self.release_start_ms = min((e.ts_ms for e in events), default=None)
        return ApplyStats(result.applied, result.late, result.duplicate)

    # -- judging -----------------------------------------------------------------------------

    def evaluate(self, now_ms: int, *, backlog: bool = False) -> list[Emission]:
        """Judge every gate at ``now_ms`` and turn rollbacks and promotions into commands.

        Commands decided on the event-time grid since the last call come first, and their
        decisions lead ``last_decisions``.

        ``backlog``: the caller knows more of this workflow's telemetry is waiting to be
        read. Then, while the newest event is more than a grid step older than ``now_ms``,
        only the event-time grid judges: a judgement at the clock would read windows cut
        tens of minutes ahead of the telemetry and move sustained clocks and detectors to
        moments replay never sees (latency never rolled back, reviews 22 minutes late,
        quality 11 minutes early: ``tests/reliability/test_kinds_live.py``). A quiet
        workflow has nothing waiting, so it is still judged at the clock.
        """
        queued, self._queued = self._queued, []
        decided, self._queued_decisions = self._queued_decisions, []
        if backlog and self.behind(now_ms):
            if decided:
                self.last_decisions = decided
            return queued
        emissions = self._evaluate(now_ms)
        if decided:
            self.last_decisions = decided + self.last_decisions
        return queued + emissions

    def behind(self, now_ms: int) -> bool:
        """True while the newest event is more than one event-time grid step older than ``now_ms``."""
        every, newest = self._judge_every_ms, self.state.max_ts_ms
        return every is not None and newest is not None and now_ms - newest > every

    def _evaluate(self, now_ms: int) -> list[Emission]:
        ticket = self.ticket
        if ticket is None:
            return []
        start = self.release_start_ms if self.release_start_ms is not None else now_ms
        results = []
        for gate in ticket.gates:
            if gate.by_segment and self.segments:
                # Per segment once segments appear; workflow-wide while traffic carries none.
                for name in sorted(self.segments):
                    source = self.segments[name]
                    arms = Arms(source.candidate, source.control, ticket, start, self.detectors, name)
                    results.append(replace(evaluate_gate(gate, arms, now_ms), segment=name))
                continue
            source = self.segments[gate.segment] if gate.segment is not None else self.state
            arms = Arms(source.candidate, source.control, ticket, start, self.detectors, gate.segment)
            results.append(replace(evaluate_gate(gate, arms, now_ms), segment=gate.segment))
        promotion = evaluate_promotion(ticket, Arms(self.state.candidate, self.state.control, ticket, start), now_ms)
        decisions = judge(ticket, results, self.memory, now_ms, promotion)
        self.last_results, self.last_decisions = results, decisions
        emissions = []
        for decision in decisions:
            if decision.kind == "escalate":
                # Kept until a person approves it (rollwatch.gates.manual), with its evidence.
                self.memory.escalations.setdefault(decision.command_id, self.command(decision).model_dump(mode="json"))
            if decision.kind in ("rollback", "promote"):
                breach = decision.result.breach_ts_ms if decision.result.breach_ts_ms is not None else now_ms
                command = self.command(decision)
                emissions.append(Emission(self._signer(command) if self._signer else command, breach))
        return emissions

    def command(self, decision: Decision) -> RollbackCommand:
        ticket = self.ticket
        assert ticket is not None
        result = decision.result
        # Issued now, not at the decision's event time: the TTL counts from when it is sent.
        issued = datetime.fromtimestamp(self._clock(), UTC)
        decided = datetime.fromtimestamp(decision.at_ms / 1000, UTC)
        detail = result.detail or decision.note or ""
        if issued - decided >= timedelta(milliseconds=BEHIND_NOTE_MS):
            behind = f"decided on telemetry up to {rfc3339(decided)}, {int((issued - decided).total_seconds())}s before"
            detail = f"{detail}; {behind}" if detail else behind
        message = customer_message(ticket, decision.action) if decision.kind == "rollback" else None  # type: ignore[arg-type]
        return RollbackCommand(
            command_id=decision.command_id,
            issued_at=issued,
            workflow=self._workflow,
            segment=decision.segment,
            action=decision.action,  # type: ignore[arg-type]
            flags=dict(decision.flags),  # type: ignore[arg-type]
            reason=Reason(
                gate=decision.gate,
                metric=result.metric,
                observed=result.observed,
                threshold=result.threshold,
                control=result.control,
                window=result.window,
                samples=dict(result.samples),
                detail=detail or None,
            ),
            evidence=Evidence(
                trace_ids=[e.trace_id for e in result.evidence if e.trace_id][:100],
                event_ids=[e.event_id for e in result.evidence][:100],
                attachments=list(ticket.evidence),
            ),
            issued_by=ticket.owners.automation,
            ticket=TicketRef(id=ticket.ticket, revision=ticket.revision),
            customer_message=CustomerMessage(key=message.key, text=message.text) if message else None,
            expires_at=issued + timedelta(milliseconds=COMMAND_TTL_MS),
        )

    def manual(self, command: RollbackCommand) -> str:
        """A person's command, admitted by the caller: change what the judge may do on its own."""
        return apply_manual(self.memory, command)

    def readings(self) -> list[GateReading]:
        return [
            GateReading(r.gate, "candidate", r.metric, r.observed, r.threshold, r.state) for r in self.last_results
        ] + [
            GateReading(r.gate, "control", r.metric, r.control, None, r.state)
            for r in self.last_results
            if r.control is not None
        ]

    def status(self) -> dict[str, Any]:
        ticket = self.ticket
        routes = {
            name: {
                "calls": route.calls,
                "reviews": route.reviews,
                "complaints": route.complaints,
                "late_events": route.late_events,
                "arm": route.last_arm,
            }
            for name, route in self.state.routes.items()
        }
        return {
            "workflow": self._workflow,
            "ticket": None if ticket is None else {"id": ticket.ticket, "revision": ticket.revision},
            "arms": {"control": self.state.arm_route("control"), "candidate": self.state.arm_route("candidate")},
            "rollout_percent": self.memory.rollout_percent,
            "frozen": self.memory.frozen,
            "rolled_back": self.memory.rolled_back,
            "healthy_since_ms": self.memory.healthy_since_ms,
            "hold_ms": int(ticket.canary.hold) if ticket is not None else None,
            "plan": sorted(p for p in plan_percents(ticket) if p > 0) if ticket is not None else [],
            "paused": self.memory.paused,
            "aborted": self.memory.aborted,
            "escalations": escalation_views(ticket, self.memory) if ticket is not None else [],
            "routes": routes,
            "duplicates": self.state.duplicates,
            "shadow": self._shadow_status(),
            "gates": [gate_json(r) for r in self.last_results],
            "last_decisions": [
                {
                    "kind": d.kind,
                    "gate": d.gate,
                    "action": d.action,
                    "command_id": d.command_id,
                    "at_ms": d.at_ms,
                    "note": d.note,
                }
                for d in self.last_decisions
            ],
        }

    def _segment_state(self, config: StreamsConfig) -> WorkflowState:
        state = WorkflowState(self._workflow, config)
        if self.ticket is not None:
            state.set_arms(control=self.ticket.control.route, candidate=self.ticket.candidate.route)
        return state

    def _shadow_status(self) -> dict[str, Any] | None:
        summary = self.shadow.summary()
        if not summary.pairs and not summary.unpaired:
            return None
        return {
            "better": summary.better,
            "worse": summary.worse,
            "same": summary.same,
            "unpaired": summary.unpaired,
            "recommendation": summary.recommendation,
        }

    # -- checkpoint --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        header = orjson.dumps(
            {
                "format": _FORMAT,
                "workflow": self._workflow,
                "ticket": base64.b64encode(self._ticket_raw).decode() if self.ticket is not None else None,
                "memory": self.memory.to_dict(),
                "detectors": self.detectors.to_dict(),
                "release_start_ms": self.release_start_ms,
                "next_judge_ms": self.next_judge_ms,
                "segments": sorted(self.segments),
                "shadow": self.shadow.to_dict(),
            }
        )
        parts = [header, self.state.to_bytes(), *(self.segments[s].to_bytes() for s in sorted(self.segments))]
        return b"".join(struct.pack(">I", len(p)) + p for p in parts)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        config: StreamsConfig | None = None,
        signer: Signer | None = None,
        judge_every_ms: int | None = None,
    ) -> Engine:
        try:
            parts: list[bytes] = []
            offset = 0
            while offset < len(data):
                (size,) = struct.unpack_from(">I", data, offset)
                parts.append(data[offset + 4 : offset + 4 + size])
                offset += 4 + size
            header = orjson.loads(parts[0])
            if header.get("format") != _FORMAT:
                raise EngineStateError(f"engine checkpoint format {header.get('format')!r} is not {_FORMAT}")
            engine = cls(header["workflow"], config=config, signer=signer, judge_every_ms=judge_every_ms)
            if header["ticket"] is not None:
                raw = base64.b64decode(header["ticket"])
                engine.install(load_ticket_bytes(raw, f"checkpoint/{header['workflow']}"), raw)
            engine.state = WorkflowState.from_bytes(parts[1])
            engine.segments = {
                name: WorkflowState.from_bytes(blob) for name, blob in zip(header["segments"], parts[2:], strict=True)
            }
            if engine.ticket is not None:
                for segment_state in engine.segments.values():
                    segment_state.set_arms(control=engine.ticket.control.route, candidate=engine.ticket.candidate.route)
            engine.memory = JudgeMemory.from_dict(header["memory"])
            if "detectors" in header:  # absent from older checkpoints: the detectors start afresh
                engine.detectors = DetectorBank.from_dict(header["detectors"])
            engine.release_start_ms = header["release_start_ms"]
            engine.next_judge_ms = header.get("next_judge_ms")  # absent from older checkpoints
            engine.shadow = ShadowComparison.from_dict(header["shadow"])
            return engine
        except EngineStateError:
            raise
        except Exception as exc:
            raise EngineStateError(f"corrupt engine checkpoint: {exc}") from exc


class EngineFactoryImpl:
    """Builds and restores the worker's engines: they also judge on the event-time grid."""

    def __init__(
        self,
        config: StreamsConfig | None = None,
        signer: Signer | None = None,
        judge_every_ms: int | None = JUDGE_EVERY_MS,
    ) -> None:
        self.config = config
        self.signer = signer
        self.judge_every_ms = judge_every_ms

    def new(self, workflow: str) -> Engine:
        return Engine(workflow, config=self.config, signer=self.signer, judge_every_ms=self.judge_every_ms)

    def restore(self, data: bytes) -> Engine:
        return Engine.from_bytes(data, config=self.config, signer=self.signer, judge_every_ms=self.judge_every_ms)
