"""Every aggregate of the route and workflow states against a brute-force recomputation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rollwatch.events import Event
from rollwatch.streams import RouteState, WorkflowState

from .factories import SMALL, event_streams
from .model import Model, assert_route_matches, assert_workflow_matches


def _queries(events: list[Event], picks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Query ranges around the data: aligned and not, inside the fine ring, across tiers, empty."""
    if not events:
        return [(0, 10)]
    top = max(e.ts_ms for e in events)
    out = [(top - span, top + shift) for span, shift in picks]
    out += [(top - 8_000, top + 1), (top - 30_000, top - 7_000), (0, top + 100_000), (top, top)]
    return [(min(a, b), max(a, b)) for a, b in out]


_picks = st.lists(st.tuples(st.integers(0, 40_000), st.integers(-3_000, 3_000)), max_size=4)


@settings(max_examples=120, deadline=None)
@given(events=event_streams(), picks=_picks)
def test_workflow_state_matches_brute_force(events: list[Event], picks: list[tuple[int, int]]) -> None:
    state = WorkflowState("wf", SMALL)
    model = Model("wf", SMALL)
    for event in events:
        assert state.apply(event) == model.apply(event)
    assert_workflow_matches(state, model, _queries(events, picks))


@settings(max_examples=60, deadline=None)
@given(events=event_streams(), picks=_picks, cut=st.integers(0, 120))
def test_restored_twin_matches_brute_force(events: list[Event], picks: list[tuple[int, int]], cut: int) -> None:
    """Serialize mid-stream, restore, keep feeding: the restored state still equals brute force."""
    state = WorkflowState("wf", SMALL)
    model = Model("wf", SMALL)
    for event in events[:cut]:
        assert state.apply(event) == model.apply(event)
    twin = WorkflowState.from_bytes(state.to_bytes())
    assert twin == state
    for event in events[cut:]:
        assert twin.apply(event) == model.apply(event)
        state.apply(event)
    assert twin.to_bytes() == state.to_bytes()
    assert_workflow_matches(twin, model, _queries(events, picks))


@settings(max_examples=60, deadline=None)
@given(events=event_streams(), picks=_picks)
def test_route_state_alone_matches_brute_force(events: list[Event], picks: list[tuple[int, int]]) -> None:
    """A RouteState driven directly with a caller-computed watermark behaves like inside a workflow."""
    routes: dict[str, RouteState] = {}
    model = Model("wf", SMALL)
    max_ts: int | None = None
    seen: set[str] = set()
    for event in events:
        if event.event_id in seen:
            continue  # dedup is the workflow's job
        seen.add(event.event_id)
        model.apply(event)
        max_ts = event.ts_ms if max_ts is None else max(max_ts, event.ts_ms)
        route = routes.setdefault(event.route, RouteState("wf", event.route, SMALL))
        route.apply(event, max_ts - SMALL.allowed_lateness_ms)
    for name, route_model in model.routes.items():
        assert_route_matches(routes[name], route_model, _queries(events, picks))
