"""A brute-force model of the streaming core: keep every raw event, recompute on demand.

It restates the documented semantics as plainly as possible (lists, sums, numpy) so
the property tests can compare every aggregate of the real state against it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from rollwatch.events import CallEvent, ComplaintEvent, Event, ReviewEvent
from rollwatch.streams import Applied, RouteState, StreamsConfig, WorkflowState

__all__ = ["Model", "RouteModel", "assert_route_matches", "assert_workflow_matches"]


@dataclass
class RouteModel:
    accepted: list[Event] = field(default_factory=list)
    late: int = 0

    @property
    def calls(self) -> list[CallEvent]:
        return [e for e in self.accepted if isinstance(e, CallEvent)]

    @property
    def reviews(self) -> list[ReviewEvent]:
        return [e for e in self.accepted if isinstance(e, ReviewEvent)]

    @property
    def confirmed(self) -> list[ComplaintEvent]:
        return [e for e in self.accepted if isinstance(e, ComplaintEvent) and e.confirmed]


class Model:
    """What a WorkflowState should hold after the same events, recomputed from scratch."""

    def __init__(self, workflow: str, config: StreamsConfig) -> None:
        self.workflow = workflow
        self.config = config
        self.routes: dict[str, RouteModel] = {}
        self.recent_ids: deque[str] = deque(maxlen=config.dedup_ids)
        self.max_ts: int | None = None
        self.duplicates = 0
        self.foreign = 0

    def apply(self, event: Event) -> Applied:
        if event.workflow != self.workflow:
            self.foreign += 1
            return Applied.FOREIGN
        if event.event_id in self.recent_ids:
            self.duplicates += 1
            return Applied.DUPLICATE
        self.recent_ids.append(event.event_id)
        self.max_ts = event.ts_ms if self.max_ts is None else max(self.max_ts, event.ts_ms)
        route = self.routes.setdefault(event.route, RouteModel())
        if event.ts_ms < self.max_ts - self.config.allowed_lateness_ms:
            route.late += 1
            return Applied.LATE
        route.accepted.append(event)
        return Applied.APPLIED


def _rate_window(flags: list[bool], size: int) -> tuple[int, int]:
    last = flags[-size:]
    return sum(last), len(last)


def _counted(model: RouteModel, config: StreamsConfig, start: int, end: int) -> list[Event]:
    """The events a query [start, end) covers: a bucket counts iff its start is in range."""
    if not model.accepted:
        return []
    fw, cw = config.fine.bucket_ms, config.coarse.bucket_ms
    newest = max(e.ts_ms // fw for e in model.accepted)
    fine_oldest = newest - config.fine.buckets + 1
    spilled = [e for e in model.accepted if e.ts_ms // fw < fine_oldest]
    coarse_newest = max((e.ts_ms // cw for e in spilled), default=None)
    out = []
    for e in model.accepted:
        if e.ts_ms // fw >= fine_oldest:
            bucket_start = e.ts_ms // fw * fw
        else:
            assert coarse_newest is not None
            if e.ts_ms // cw <= coarse_newest - config.coarse.buckets:
                continue
            bucket_start = e.ts_ms // cw * cw
        if start <= bucket_start < end:
            out.append(e)
    return out


def _close(actual: float | None, expected: float | None, rel: float = 1e-9) -> bool:
    if actual is None or expected is None:
        return actual is expected
    return math.isclose(actual, expected, rel_tol=rel, abs_tol=1e-9)


def assert_route_matches(state: RouteState, model: RouteModel, queries: list[tuple[int, int]]) -> None:
    """Every aggregate of ``state`` equals its brute-force recomputation from ``model``."""
    config = state.config
    calls, reviews = model.calls, model.reviews
    assert state.late_events == model.late
    assert state.calls == len(calls)
    assert state.reviews == len(reviews)
    assert state.complaints == len(model.confirmed)

    # Count windows: exact rates over the last N, arrival order.
    assert (state.errors.count, state.errors.n) == _rate_window([c.status != "ok" for c in calls], config.error_window)
    assert (state.safety_blocks.count, state.safety_blocks.n) == _rate_window(
        [c.safety_blocked for c in calls], config.safety_window
    )
    checked = [c for c in calls if c.schema_valid is not None]
    assert (state.schema_failures.count, state.schema_failures.n) == _rate_window(
        [c.schema_valid is False for c in checked], config.schema_window
    )
    assert (state.review_rejections.count, state.review_rejections.n) == _rate_window(
        [r.verdict == "rejected" for r in reviews], config.review_window
    )

    # Cost per successful task: steps charged to the completion that ends them.
    tasks: list[tuple[int, bool]] = []
    pending = 0
    for c in calls:
        pending += round(c.cost_usd * 1e9)
        if c.task_success is not None:
            tasks.append((pending, c.task_success))
            pending = 0
    held = tasks[-config.task_window :]
    assert state.tasks.tasks() == held
    assert state.tasks.pending_nano == pending
    assert state.tasks.cost_nano == sum(cost for cost, _ in held)
    successes = sum(ok for _, ok in held)
    expected_cps = None if not held else math.inf if not successes else sum(c for c, _ in held) / successes / 1e9
    assert _close(state.tasks.cost_per_success_usd, expected_cps)

    # Evidence: the last K offending items of each kind, arrival order.
    k = config.evidence_per_kind
    expected_evidence = {
        "error": [c.event_id for c in calls if c.status == "error"][-k:],
        "timeout": [c.event_id for c in calls if c.status == "timeout"][-k:],
        "safety_block": [c.event_id for c in calls if c.safety_blocked][-k:],
        "schema_failure": [c.event_id for c in calls if c.schema_valid is False][-k:],
        "rejected_review": [r.event_id for r in reviews if r.verdict == "rejected"][-k:],
        "complaint": [c.event_id for c in model.confirmed][-k:],
    }
    for kind, ids in expected_evidence.items():
        assert [e.event_id for e in state.evidence_items(kind)] == ids, kind  # type: ignore[arg-type]

    # Time windows, for each query range.
    for start, end in queries:
        counted = _counted(model, config, start, end)
        c_calls = [e for e in counted if isinstance(e, CallEvent)]
        c_reviews = [e for e in counted if isinstance(e, ReviewEvent)]
        stats = state.window_between(start, end)
        assert stats.calls == len(c_calls), (start, end)
        assert stats.errors == sum(c.status != "ok" for c in c_calls)
        assert stats.timeouts == sum(c.status == "timeout" for c in c_calls)
        assert stats.schema_checked == sum(c.schema_valid is not None for c in c_calls)
        assert stats.schema_failed == sum(c.schema_valid is False for c in c_calls)
        assert stats.safety_blocked == sum(c.safety_blocked for c in c_calls)
        assert stats.completed == sum(c.task_success is not None for c in c_calls)
        assert stats.succeeded == sum(c.task_success is True for c in c_calls)
        assert stats.cost_nano == sum(round(c.cost_usd * 1e9) for c in c_calls)
        assert _close(stats.latency_sum, math.fsum(c.latency_ms for c in c_calls))
        qualities = [c.quality_score for c in c_calls if c.quality_score is not None]
        assert stats.quality_n == len(qualities)
        assert _close(stats.mean_quality, math.fsum(qualities) / len(qualities) if qualities else None)
        assert stats.reviews == len(c_reviews)
        assert stats.rejected == sum(r.verdict == "rejected" for r in c_reviews)
        assert stats.complaints == sum(isinstance(e, ComplaintEvent) and e.confirmed for e in counted)
        sketch = state.latency_sketch(start, end)
        assert sketch.count == len(c_calls)
        got = sketch.quantiles((0.0, 0.5, 0.95, 0.99, 1.0))
        assert state.windows.latency_quantiles((0.0, 0.5, 0.95, 0.99, 1.0), start, end) == got
        if c_calls:
            exact = np.percentile([c.latency_ms for c in c_calls], [0, 50, 95, 99, 100])
            for g, e in zip(got, exact, strict=True):
                assert g is not None
                assert math.isclose(g, float(e), rel_tol=config.sketch_accuracy + 1e-9, abs_tol=1e-9), (g, e)
        else:
            assert got == [None] * 5

        # Complaints: exact by event time, not bucketed.
        confirmed_in = [c for c in model.confirmed[-config.complaint_times :] if start <= c.ts_ms < end]
        view = state.complaints_between(start, end)
        assert view.count == len(confirmed_in)
        assert view.exact == (len(model.confirmed) <= config.complaint_times)
        assert [e.event_id for e in view.items] == [
            c.event_id for c in model.confirmed[-config.evidence_per_kind :] if start <= c.ts_ms < end
        ]


def assert_workflow_matches(state: WorkflowState, model: Model, queries: list[tuple[int, int]]) -> None:
    assert state.duplicates == model.duplicates
    assert state.foreign_events == model.foreign
    assert state.max_ts_ms == model.max_ts
    assert sorted(state.routes) == sorted(model.routes)
    for name, route_model in model.routes.items():
        assert_route_matches(state.routes[name], route_model, queries)
