"""Builders for gate tests: a ticket from the examples and arms filled with chosen outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollwatch.events import CallEvent, ComplaintEvent, ReviewEvent
from rollwatch.gates.evaluate import Arms
from rollwatch.streams.workflow_state import WorkflowState
from rollwatch.tickets.load import load_ticket
from rollwatch.tickets.model import Ticket

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support-summary.ticket.yaml"
WF, CONTROL, CANDIDATE = "support-summary", "support-summary/stable", "support-summary/candidate"
T0 = 1_763_900_000_000


@pytest.fixture(scope="session")
def ticket() -> Ticket:
    return load_ticket(EXAMPLE)


class Traffic:
    """A workflow state fed call by call, with the time advancing 100 ms per event."""

    def __init__(self) -> None:
        self.state = WorkflowState(WF)
        self.state.set_arms(control=CONTROL, candidate=CANDIDATE)
        self.now = T0
        self.n = 0

    def _id(self) -> str:
        self.n += 1
        return f"e{self.n}"

    def calls(self, arm: str, count: int, **fields: Any) -> Traffic:
        route = CANDIDATE if arm == "candidate" else CONTROL
        base: dict[str, Any] = {
            "latency_ms": 800.0,
            "status": "ok",
            "schema_valid": True,
            "safety_blocked": False,
            "task_success": True,
            "cost_usd": 0.01,
        }
        base.update(fields)
        for _ in range(count):
            self.now += 100
            event_id = self._id()
            self.state.apply(
                CallEvent(event_id=event_id, ts_ms=self.now, workflow=WF, route=route, trace_id=f"t-{event_id}", **base)
            )
        return self

    def reviews(self, arm: str, approved: int, rejected: int) -> Traffic:
        route = CANDIDATE if arm == "candidate" else CONTROL
        for verdict, count in (("approved", approved), ("rejected", rejected)):
            for _ in range(count):
                self.now += 100
                self.state.apply(ReviewEvent(self._id(), self.now, WF, route, verdict))  # type: ignore[arg-type]
        return self

    def complaints(self, count: int, *, sample: str | None = "bad summary") -> Traffic:
        for _ in range(count):
            self.now += 100
            self.state.apply(ComplaintEvent(self._id(), self.now, WF, CANDIDATE, True, sample=sample))
        return self

    def arms(self, ticket: Ticket, release_start_ms: int = T0) -> Arms:
        return Arms(self.state.candidate, self.state.control, ticket, release_start_ms)


@pytest.fixture
def traffic() -> Iterator[Traffic]:
    yield Traffic()


def wait(traffic: Traffic, ms: int) -> Traffic:
    traffic.now += ms
    return traffic
