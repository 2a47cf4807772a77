"""Event builders and hypothesis strategies shared by the streams tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

from hypothesis import strategies as st

from rollwatch.events import Arm, CallEvent, CallStatus, ComplaintEvent, Event, ReviewEvent
from rollwatch.streams import StreamsConfig, WindowSpec

__all__ = [
    "SMALL",
    "T0",
    "call",
    "complaint",
    "event_streams",
    "review",
]

T0 = 1_699_984_800_000
"""An epoch-ms origin on a 6-hour boundary (2023-11-14T18:00Z), so bucket arithmetic reads plainly."""

SMALL = StreamsConfig(
    error_window=7,
    safety_window=5,
    schema_window=4,
    review_window=3,
    task_window=4,
    fine=WindowSpec(1_000, 8),
    coarse=WindowSpec(4_000, 3),
    allowed_lateness_ms=3_000,
    evidence_per_kind=3,
    complaint_times=4,
    dedup_ids=16,
)
"""Tiny windows so a few dozen events fill, wrap, spill and evict every structure."""

_ids = itertools.count()


def _next_id() -> str:
    return f"e{next(_ids)}"


def call(
    ts_ms: int,
    *,
    route: str = "r1",
    workflow: str = "wf",
    latency_ms: float = 100.0,
    status: CallStatus = "ok",
    schema_valid: bool | None = True,
    safety_blocked: bool = False,
    task_success: bool | None = None,
    cost_usd: float = 0.001,
    quality_score: float | None = None,
    arm: Arm | None = None,
    event_id: str | None = None,
    trace_id: str | None = None,
) -> CallEvent:
    return CallEvent(
        event_id=event_id or _next_id(),
        ts_ms=ts_ms,
        workflow=workflow,
        route=route,
        latency_ms=latency_ms,
        status=status,
        schema_valid=schema_valid,
        safety_blocked=safety_blocked,
        task_success=task_success,
        cost_usd=cost_usd,
        quality_score=quality_score,
        arm=arm,
        trace_id=trace_id,
    )


def review(
    ts_ms: int,
    verdict: Literal["approved", "rejected"] = "approved",
    *,
    route: str = "r1",
    workflow: str = "wf",
    arm: Arm | None = None,
    event_id: str | None = None,
) -> ReviewEvent:
    return ReviewEvent(
        event_id=event_id or _next_id(), ts_ms=ts_ms, workflow=workflow, route=route, verdict=verdict, arm=arm
    )


def complaint(
    ts_ms: int,
    confirmed: bool = True,
    *,
    route: str = "r1",
    workflow: str = "wf",
    sample: str | None = None,
    event_id: str | None = None,
) -> ComplaintEvent:
    return ComplaintEvent(
        event_id=event_id or _next_id(),
        ts_ms=ts_ms,
        workflow=workflow,
        route=route,
        confirmed=confirmed,
        sample=sample,
    )


@dataclass(frozen=True)
class _Step:
    kind: int
    route: int
    advance: int
    back: int
    latency: float
    status: int
    schema: int
    blocked: bool
    task: int
    cost: int
    quality: float | None
    flag: bool
    repeat: bool


_steps = st.builds(
    _Step,
    kind=st.sampled_from([0, 0, 0, 0, 1, 1, 2]),
    route=st.integers(0, 1),
    advance=st.one_of(st.integers(0, 800), st.integers(800, 7_000)),
    back=st.one_of(st.just(0), st.integers(0, 6_000)),
    latency=st.one_of(st.just(0.0), st.floats(0.1, 5_000.0, allow_nan=False)),
    status=st.sampled_from([0, 0, 0, 1, 2]),
    schema=st.integers(0, 2),
    blocked=st.booleans(),
    task=st.integers(0, 2),
    cost=st.integers(0, 5_000_000),
    quality=st.one_of(st.none(), st.floats(0.0, 1.0, allow_nan=False)),
    flag=st.booleans(),
    repeat=st.integers(0, 19).map(lambda i: i == 0),
)


def _build(steps: list[_Step], start: int) -> list[Event]:
    events: list[Event] = []
    clock = start
    for i, s in enumerate(steps):
        clock += s.advance
        ts = max(0, clock - s.back)
        if s.repeat and events:
            events.append(events[len(events) // 2])
            continue
        route = f"r{s.route + 1}"
        event_id = f"x{i}"
        if s.kind == 0:
            events.append(
                call(
                    ts,
                    route=route,
                    latency_ms=s.latency,
                    status=("ok", "error", "timeout")[s.status],
                    schema_valid=(None, True, False)[s.schema],
                    safety_blocked=s.blocked,
                    task_success=(None, True, False)[s.task],
                    cost_usd=s.cost / 1e9,
                    quality_score=s.quality,
                    event_id=event_id,
                    trace_id=f"t{i}",
                )
            )
        elif s.kind == 1:
            events.append(review(ts, "rejected" if s.flag else "approved", route=route, event_id=event_id))
        else:
            events.append(complaint(ts, s.flag, route=route, event_id=event_id, sample=f"sample {i}"))
    return events


def event_streams(max_size: int = 120) -> st.SearchStrategy[list[Event]]:
    """Mixed call/review/complaint streams on two routes, out of order, with some redeliveries."""
    return st.builds(_build, st.lists(_steps, max_size=max_size), st.integers(0, 10_000).map(lambda d: T0 + d))
