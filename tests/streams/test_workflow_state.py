"""WorkflowState: workflow watermark, duplicates, arms, batches, serialization."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwatch.events import Event
from rollwatch.streams import (
    MINUTE_MS,
    Applied,
    BatchResult,
    CorruptState,
    RouteState,
    StateKindMismatch,
    StreamsConfig,
    StreamsError,
    WorkflowState,
)

from .factories import SMALL, T0, call, event_streams, review

LATENESS = StreamsConfig().allowed_lateness_ms


def test_lateness_is_relative_to_the_whole_workflow() -> None:
    """A quiet route's event is late if its sibling has moved event time on."""
    state = WorkflowState("wf")
    assert state.apply(call(T0 + 10 * MINUTE_MS, route="busy")) is Applied.APPLIED
    assert state.watermark_ms == T0 + 10 * MINUTE_MS - LATENESS
    assert state.apply(call(T0 + 5 * MINUTE_MS, route="quiet")) is Applied.APPLIED  # exactly at the watermark
    assert state.apply(call(T0 + 5 * MINUTE_MS - 1, route="quiet")) is Applied.LATE
    quiet = state.route("quiet")
    assert quiet is not None and (quiet.late_events, quiet.calls) == (1, 1)
    assert state.late_events == 1


def test_duplicates_are_dropped_and_counted_within_the_memory() -> None:
    state = WorkflowState("wf", SMALL)  # remembers 16 ids
    first = call(T0, event_id="dup")
    assert state.apply(first) is Applied.APPLIED
    assert state.apply(call(T0 + 1, event_id="dup")) is Applied.DUPLICATE
    assert state.duplicates == 1 and state.seen("dup")
    for i in range(16):
        state.apply(call(T0 + 2 + i))
    assert not state.seen("dup")
    assert state.apply(call(T0 + 40, event_id="dup")) is Applied.APPLIED
    route = state.route("r1")
    assert route is not None and route.calls == 18


def test_late_redelivery_counts_as_duplicate_not_late() -> None:
    state = WorkflowState("wf")
    state.apply(call(T0, event_id="a"))
    state.apply(call(T0 + 60 * MINUTE_MS))
    assert state.apply(call(T0, event_id="a")) is Applied.DUPLICATE


def test_foreign_events_are_dropped() -> None:
    state = WorkflowState("wf")
    assert state.apply(call(T0, workflow="other")) is Applied.FOREIGN
    assert state.foreign_events == 1 and not state.routes


def test_arms_learned_from_events_and_ticket_takes_precedence() -> None:
    state = WorkflowState("wf")
    assert state.control is None and state.candidate is None
    state.apply(call(T0, route="gpt-a", arm="control"))
    state.apply(call(T0, route="gpt-b", arm="candidate"))
    state.apply(review(T0, route="plain"))  # no arm: the route still exists
    assert state.control is state.route("gpt-a")
    assert state.candidate is state.route("gpt-b")
    assert state.route("plain") is not None
    state.set_arms(control="plain", candidate="gpt-b")
    assert state.control is state.route("plain")
    assert state.arm_route("control") == "plain"
    state.set_arms(candidate="not-seen-yet")
    assert state.candidate is None  # the ticket names a route with no traffic yet
    assert state.control is state.route("gpt-a")  # back to what events say
    assert state.shadow is None


def test_apply_many_counts_fates() -> None:
    state = WorkflowState("wf")
    events = [call(T0 + 60 * MINUTE_MS, event_id="x"), call(T0, event_id="old"), call(T0, event_id="x")]
    events.append(call(T0, workflow="zz"))
    result = state.apply_many(events)
    assert result == BatchResult(applied=1, late=1, duplicate=1, foreign=1)
    assert result.total == 4


def test_advance_watermark_moves_time_without_events() -> None:
    state = WorkflowState("wf")
    state.apply(call(T0))
    state.advance_watermark(T0 + 10 * MINUTE_MS)
    assert state.watermark_ms == T0 + 10 * MINUTE_MS
    assert state.apply(call(T0 + 9 * MINUTE_MS)) is Applied.LATE
    route = state.route("r1")
    assert route is not None and route.windows.buckets(T0, T0 + 1)[0][0].latency.frozen


@settings(max_examples=40, deadline=None)
@given(events=event_streams(max_size=80), cut=st.integers(0, 80))
def test_twin_after_restore_gives_identical_results(events: list[Event], cut: int) -> None:
    state = WorkflowState("wf", SMALL)
    state.set_arms(control="r1")
    state.apply_many(events[:cut])
    twin = WorkflowState.from_bytes(state.to_bytes())
    assert twin == state
    assert twin.control is twin.route("r1")
    for event in events[cut:]:
        assert twin.apply(event) == state.apply(event)
    assert twin.to_bytes() == state.to_bytes()


def test_corrupt_and_mismatched_bytes() -> None:
    state = WorkflowState("wf")
    for i in range(200):
        state.apply(call(T0 + i * 1000, route=f"r{i % 3}"))
    data = state.to_bytes()
    assert WorkflowState.from_bytes(data) == state
    with pytest.raises(StateKindMismatch):
        RouteState.from_bytes(data)
    for position in range(0, len(data), max(1, len(data) // 97)):
        flipped = bytearray(data)
        flipped[position] ^= 0x10
        with pytest.raises(StreamsError):
            WorkflowState.from_bytes(bytes(flipped))
    with pytest.raises(CorruptState):
        WorkflowState.from_bytes(b"")
