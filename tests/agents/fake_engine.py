"""A small, honest :class:`WorkflowEngine` for the plumbing tests and the worker benchmark.

It counts call events per arm, remembers recent event ids to report duplicates, and has
two gates, both configured by its ticket (JSON or YAML bytes on the releases topic)::

    {"id": "rel-7", "revision": 2, "max_candidate_errors": 5, "silence_ms": 1500}

* ``candidate-errors``: fires once when the candidate arm's error count reaches
  ``max_candidate_errors``; ``breach_ts_ms`` is the event time of the event that did it.
* ``silence`` (optional): fires once when wall-clock ``now_ms`` is more than
  ``silence_ms`` past the newest event, which only the judge timer can see.

Command ids are deterministic (workflow, ticket, revision, gate), all state goes through
``to_bytes`` as orjson, and without a ticket nothing fires.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import yaml

from rollwatch.agents.ports import ApplyStats, Emission, GateReading
from rollwatch.commands import Evidence, Reason, RollbackCommand, TicketRef
from rollwatch.errors import ContractError
from rollwatch.events import CallEvent, Event

__all__ = ["FakeEngine", "FakeEngineFactory", "command_id", "factory", "ticket"]

RECENT_IDS: Final = 1_000


def command_id(workflow: str, ticket_id: str, revision: int, gate: str) -> str:
    return f"{workflow}/{ticket_id}@{revision}/{gate}"


def ticket(ticket_id: str = "rel-1", revision: int = 1, max_candidate_errors: int = 5, **extra: Any) -> bytes:
    """Ticket bytes as a release tool would publish them."""
    return orjson.dumps({"id": ticket_id, "revision": revision, "max_candidate_errors": max_candidate_errors, **extra})


def _parse_ticket(raw: bytes) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ContractError("", f"ticket is neither JSON nor YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ContractError("", "ticket must be a mapping")
    if not isinstance(doc.get("id"), str) or not doc["id"]:
        raise ContractError("id", "is required (a non-empty string)")
    if type(doc.get("revision")) is not int or doc["revision"] < 0:
        raise ContractError("revision", "is required (an integer >= 0)")
    if type(doc.get("max_candidate_errors")) is not int or doc["max_candidate_errors"] < 1:
        raise ContractError("max_candidate_errors", "is required (an integer >= 1)")
    silence = doc.get("silence_ms")
    if silence is not None and (type(silence) is not int or silence < 1):
        raise ContractError("silence_ms", "must be an integer >= 1")
    return doc


class FakeEngine:
    def __init__(self, workflow: str, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self._workflow = workflow
        self.ticket: dict[str, Any] | None = state.get("ticket")
        self.counts: dict[str, dict[str, int]] = state.get("counts", {})
        self.duplicates: int = state.get("duplicates", 0)
        self.late: int = state.get("late", 0)
        self.newest_ts_ms: int | None = state.get("newest_ts_ms")
        self.breach_ts_ms: int | None = state.get("breach_ts_ms")
        self.emitted: list[str] = state.get("emitted", [])
        self.recent: dict[str, None] = dict.fromkeys(state.get("recent", []))
        self._readings: list[GateReading] = []

    @property
    def workflow(self) -> str:
        return self._workflow

    def set_ticket(self, ticket: bytes) -> None:
        self.ticket = _parse_ticket(ticket)

    def apply(self, events: Sequence[Event]) -> ApplyStats:
        applied = duplicates = 0
        recent = self.recent
        threshold = self.ticket["max_candidate_errors"] if self.ticket else None
        newest = self.newest_ts_ms if self.newest_ts_ms is not None else -1
        counts = self.counts
        for event in events:
            event_id = event.event_id
            if event_id in recent:
                duplicates += 1
                continue
            recent[event_id] = None
            applied += 1
            newest = max(newest, event.ts_ms)
            if type(event) is not CallEvent:
                continue
            arm = event.arm or "control"
            arm_counts = counts.get(arm)
            if arm_counts is None:
                arm_counts = counts[arm] = {"calls": 0, "errors": 0}
            arm_counts["calls"] += 1
            if event.status != "ok":
                arm_counts["errors"] += 1
                if arm == "candidate" and arm_counts["errors"] == threshold:
                    self.breach_ts_ms = event.ts_ms
        excess = len(recent) - RECENT_IDS
        if excess > 0:
            for old in list(itertools.islice(recent, excess)):
                del recent[old]
        if newest >= 0:
            self.newest_ts_ms = newest
        self.duplicates += duplicates
        return ApplyStats(applied, 0, duplicates)

    def _errors(self) -> int:
        return self.counts.get("candidate", {}).get("errors", 0)

    def evaluate(self, now_ms: int, *, backlog: bool = False) -> list[Emission]:
        if self.ticket is None:
            self._readings = []
            return []
        out: list[Emission] = []
        threshold = int(self.ticket["max_candidate_errors"])
        errors = self._errors()
        breached = errors >= threshold
        self._readings = [
            GateReading(
                "candidate-errors",
                "candidate",
                "errors",
                float(errors),
                float(threshold),
                "breached" if breached else "healthy",
            )
        ]
        if breached:
            out.extend(self._emit("candidate-errors", "rollback", errors, threshold, self.breach_ts_ms or now_ms))
        silence = self.ticket.get("silence_ms")
        if silence is not None and self.newest_ts_ms is not None:
            quiet = now_ms - self.newest_ts_ms
            self._readings.append(
                GateReading(
                    "silence",
                    "candidate",
                    "quiet_ms",
                    float(quiet),
                    float(silence),
                    "breached" if quiet > silence else "healthy",
                )
            )
            if quiet > silence:
                out.extend(self._emit("silence", "freeze_rollout", quiet, silence, self.newest_ts_ms + silence))
        return out

    def _emit(self, gate: str, action: str, observed: float, threshold: float, breach_ts_ms: int) -> list[Emission]:
        assert self.ticket is not None
        cid = command_id(self._workflow, self.ticket["id"], self.ticket["revision"], gate)
        if cid in self.emitted:
            return []
        self.emitted.append(cid)
        command = RollbackCommand(
            command_id=cid,
            issued_at=datetime.fromtimestamp(breach_ts_ms / 1000, UTC),
            workflow=self._workflow,
            action=action,  # type: ignore[arg-type]
            flags={"ai.rollout.percent": 0.0},
            reason=Reason(
                gate=gate,
                metric="errors" if gate == "candidate-errors" else "quiet_ms",
                observed=float(observed),
                threshold=float(threshold),
                window="all",
                samples={arm: c["calls"] for arm, c in sorted(self.counts.items())},
            ),
            evidence=Evidence(trace_ids=[], event_ids=[]),
            issued_by="rollwatch-test",
            ticket=TicketRef(id=self.ticket["id"], revision=self.ticket["revision"]),
        )
        return [Emission(command, breach_ts_ms)]

    def readings(self) -> list[GateReading]:
        return list(self._readings)

    def status(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "duplicates": self.duplicates,
            "ticket": self.ticket,
            "emitted": list(self.emitted),
            "newest_ts_ms": self.newest_ts_ms,
        }

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "workflow": self._workflow,
                "ticket": self.ticket,
                "counts": self.counts,
                "duplicates": self.duplicates,
                "late": self.late,
                "newest_ts_ms": self.newest_ts_ms,
                "breach_ts_ms": self.breach_ts_ms,
                "emitted": self.emitted,
                "recent": list(self.recent),
            }
        )


class FakeEngineFactory:
    def new(self, workflow: str) -> FakeEngine:
        return FakeEngine(workflow)

    def restore(self, data: bytes) -> FakeEngine:
        state = orjson.loads(data)
        return FakeEngine(state["workflow"], state)


def factory() -> FakeEngineFactory:
    """What ``--engine tests.agents.fake_engine:factory`` loads."""
    return FakeEngineFactory()
