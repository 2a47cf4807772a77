"""The judge: from gate results and the ticket to rollback, promotion, hold or escalation.

The judge holds the small amount of memory that keeps decisions from flapping:

- since when each gate has been over its threshold (suspect or breached), for gates that
  must stay breached for a while (latency: 30 minutes). The ticket's "p95 above 2x for 30
  minutes" is about the condition, so its clock runs while the detector is still gathering
  evidence: a guarded gate fires once the condition has held that long *and* the evidence
  confirms it, not 30 minutes after the confirmation;
- which rung of each gate's ladder has been taken, and when, so the next rung waits
  for the previous one to settle and is taken only if the gate is still breached;
- the rollout percent, whether the rollout is frozen, and since when the candidate has
  been healthy. Promotion needs health sustained for ``canary.hold`` (hysteresis), and
  a rollback blocks promotion for the rest of the ticket revision.

Command ids are a hash of (workflow, ticket, revision, gate, episode, rung). A worker restarted
from an earlier checkpoint re-derives the same decisions with the same ids, and flag
stores drop the repeats.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import orjson

from rollwatch.gates.kinds import KINDS
from rollwatch.gates.result import Decision, GateResult
from rollwatch.tickets.actions import AnyAction
from rollwatch.tickets.authority import issuers, may_issue
from rollwatch.tickets.catalogue import FlagName
from rollwatch.tickets.flags import FlagValue, flag_changes
from rollwatch.tickets.gates import AnyGate
from rollwatch.tickets.model import DoublingPromotion, StepPromotion, Ticket

__all__ = ["DEFAULT_SETTLE_MS", "GateMemory", "JudgeMemory", "command_id", "judge"]

DEFAULT_SETTLE_MS: Final = 10 * 60_000
"""How long a ladder rung is given to work when the ticket names no ``wait``."""


def command_id(workflow: str, ticket: str, revision: int, gate: str, episode: int, step: int) -> str:
    """Same workflow, ticket revision, gate (and segment), episode and rung: same id, on any worker."""
    parts = (workflow, ticket, str(revision), gate, str(episode), str(step))
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"rw-{digest[:32]}"


@dataclass(slots=True)
class GateMemory:
    since_ms: int | None = None
    episode: int = 0
    step: int = 0
    last_step_ms: int | None = None


@dataclass(slots=True)
class JudgeMemory:
    """Everything the judge remembers between evaluations, serialized with the engine."""

    ticket: str = ""
    revision: int = -1
    rollout_percent: float = 0.0
    frozen: bool = False
    rolled_back: bool = False
    healthy_since_ms: int | None = None
    promotions: int = 0
    gates: dict[str, GateMemory] = field(default_factory=dict)
    paused: bool = False
    """A person paused promotion (:mod:`rollwatch.gates.manual`) until they resume."""
    aborted: bool = False
    """A person aborted the canary: no automatic rollback or promotion until they resume."""
    escalations: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Escalated decisions waiting for a person, by command id: the command they would carry out."""
    manual_ids: list[str] = field(default_factory=list)
    """People's commands already taken (the newest 100), so a re-read control topic changes nothing."""

    def reset_for(self, ticket: Ticket) -> None:
        """A new ticket revision starts from its own canary plan with a clean slate."""
        if (self.ticket, self.revision) == (ticket.ticket, ticket.revision):
            return
        self.ticket, self.revision = ticket.ticket, ticket.revision
        self.rollout_percent = float(ticket.canary.start_percent)
        self.frozen = self.rolled_back = self.paused = self.aborted = False
        self.healthy_since_ms = None
        self.promotions = 0
        self.gates = {}
        self.escalations = {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JudgeMemory:
        gates = {name: GateMemory(**value) for name, value in data.pop("gates", {}).items()}
        return cls(**data, gates=gates)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def _settle_ms(gate: AnyGate, step: int) -> int:
    wait = gate.steps[step].wait if step < len(gate.steps) else None
    return int(wait) if wait is not None else DEFAULT_SETTLE_MS


def _rollback(ticket: Ticket, memory: JudgeMemory, result: GateResult, action: AnyAction, now_ms: int) -> Decision:
    mem = memory.gates[result.key]
    cid = command_id(ticket.workflow, ticket.ticket, ticket.revision, result.key, mem.episode, mem.step)
    change = flag_changes(ticket, action)
    principal = ticket.owners.automation
    segment = result.segment
    if not may_issue(ticket, principal, action):
        who = ", ".join(issuers(ticket, action)) or "nobody"
        return Decision(
            "escalate",
            result.gate,
            action.type,
            dict(change.flags),
            now_ms,
            cid,
            result,
            mem.step,
            mem.episode,
            segment,
            note=f"{principal} may not {action.type}; page {who}",
        )
    flags: dict[FlagName, FlagValue] = dict(change.flags)
    if change.hold_rollout:
        memory.frozen = True
        # Freezing writes the percent in force, so consumers pin it rather than see an empty change.
        flags.setdefault("ai.rollout.percent", memory.rollout_percent)
    if "ai.rollout.percent" in change.flags:
        memory.rollout_percent = float(change.flags["ai.rollout.percent"])
    memory.rolled_back = True
    memory.healthy_since_ms = None
    return Decision("rollback", result.gate, action.type, flags, now_ms, cid, result, mem.step, mem.episode, segment)


def judge(
    ticket: Ticket,
    results: list[GateResult],
    memory: JudgeMemory,
    now_ms: int,
    promotion: GateResult | None = None,
) -> list[Decision]:
    """Decide at ``now_ms``; updates ``memory`` in place. Returns rollbacks, escalations, promotions."""
    memory.reset_for(ticket)
    if memory.aborted:
        return []  # a person aborted: people own the release until they resume
    gates = {g.name: g for g in ticket.gates}
    decisions: list[Decision] = []
    for result in results:
        gate = gates[result.gate]
        mem = memory.gates.setdefault(result.key, GateMemory())
        if result.state not in ("breached", "suspect"):
            mem.since_ms = None
            continue
        if mem.since_ms is None:
            mem.since_ms = now_ms
        if not result.breached:
            continue
        sustained = KINDS[gate.kind].sustained(gate)
        if now_ms - mem.since_ms < sustained:
            continue
        steps = gate.steps
        if mem.step >= len(steps):
            continue  # the ladder is spent; people own it from here
        if mem.step == 0:
            mem.episode += 1
        elif mem.last_step_ms is not None and now_ms - mem.last_step_ms < _settle_ms(gate, mem.step - 1):
            continue  # the previous rung is still settling
        decisions.append(_rollback(ticket, memory, result, steps[mem.step].action, now_ms))
        mem.step += 1
        mem.last_step_ms = now_ms

    any_breached = any(r.breached for r in results)
    all_healthy = all(r.state == "healthy" for r in results)
    if decisions or any_breached or memory.rolled_back or memory.frozen or memory.paused:
        memory.healthy_since_ms = None
    elif promotion is not None:
        decisions.extend(_promotion(ticket, memory, promotion, all_healthy, now_ms))
    return decisions


def _promotion(
    ticket: Ticket, memory: JudgeMemory, result: GateResult, all_healthy: bool, now_ms: int
) -> list[Decision]:
    """Seed 2's canary rule: close to control doubles exposure, clearly worse sets it to zero."""
    rule = ticket.canary.promotion
    if result.state == "breached" and isinstance(rule, DoublingPromotion):
        # Below rollback_below_ratio of control: exposure to zero, at once.
        memory.rollout_percent = 0.0
        memory.rolled_back = True
        cid = command_id(ticket.workflow, ticket.ticket, ticket.revision, "promotion", memory.promotions, 0)
        zero: dict[FlagName, FlagValue] = {"ai.rollout.percent": 0.0}
        return [Decision("rollback", "promotion", "reduce_rollout", zero, now_ms, cid, result)]
    if result.state != "healthy" or not all_healthy:
        memory.healthy_since_ms = None
        return []
    if memory.healthy_since_ms is None:
        memory.healthy_since_ms = now_ms
    if now_ms - memory.healthy_since_ms < int(ticket.canary.hold):
        return []
    current = memory.rollout_percent
    if isinstance(rule, DoublingPromotion):
        target = min(max(current * 2, 1.0), float(rule.max_percent))
    elif isinstance(rule, StepPromotion):
        target = next((float(p) for p in rule.percents if p > current), current)
    else:  # pragma: no cover - the ticket model admits no other rule
        return []
    if target <= current:
        return []
    memory.promotions += 1
    memory.rollout_percent = target
    memory.healthy_since_ms = now_ms  # hysteresis: the next step needs another full hold
    cid = command_id(ticket.workflow, ticket.ticket, ticket.revision, "promotion", memory.promotions, 1)
    flags: dict[FlagName, FlagValue] = {"ai.rollout.percent": target}
    return [Decision("promote", "promotion", "promote", flags, now_ms, cid, result)]
