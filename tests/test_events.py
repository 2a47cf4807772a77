"""The telemetry event records and their validator: values, errors and batches."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollwatch.errors import InvalidEventError
from rollwatch.events import (
    MAX_BATCH,
    CallEvent,
    ComplaintEvent,
    ReviewEvent,
    decode_message,
    encode_events,
    event_to_dict,
    parse_event,
)


def call(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "call",
        "event_id": "e-1",
        "ts": 1_763_900_000.25,
        "workflow": "support-summary",
        "route": "anthropic/sonnet@p41",
        "latency_ms": 812.5,
        "status": "ok",
        "schema_valid": True,
        "safety_blocked": False,
        "task_success": None,
        "cost_usd": 0.0123,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def test_call_event_fields_and_time_in_milliseconds() -> None:
    event = parse_event(call(arm="candidate", trace_id="t-9", input_tokens=1200.0, quality_score=4))
    assert isinstance(event, CallEvent)
    assert event.ts_ms == 1_763_900_000_250
    assert (event.arm, event.trace_id, event.input_tokens, event.quality_score) == ("candidate", "t-9", 1200, 4.0)
    assert event.task_success is None and event.schema_valid is True


@pytest.mark.parametrize(
    ("ts", "expected_ms"),
    [
        (1_763_900_000, 1_763_900_000_000),
        ("2025-11-23T12:13:20Z", 1_763_900_000_000),
        ("2025-11-23T13:13:20.5+01:00", 1_763_900_000_500),
        ("2025-11-23t12:13:20z", 1_763_900_000_000),
    ],
)
def test_ts_accepts_epoch_seconds_and_rfc3339(ts: Any, expected_ms: int) -> None:
    assert parse_event(call(ts=ts)).ts_ms == expected_ms


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (call(latency_ms=-1), "latency_ms", ">= 0"),
        (call(latency_ms="fast"), "latency_ms", "must be a number"),
        (call(latency_ms=True), "latency_ms", "must be a number"),
        (call(status="meh"), "status", "one of ok, error, timeout"),
        (call(schema_valid="yes"), "schema_valid", "true, false or null"),
        (call(schema_valid=...), "schema_valid", "is required"),
        (call(ts=1_763_900_000_000), "ts", "looks like milliseconds"),
        (call(ts="2025-11-23 12:13:20"), "ts", "RFC 3339"),
        (call(ts="2025-02-30T00:00:00Z"), "ts", "not a valid date-time"),
        (call(workflow=""), "workflow", "must not be empty"),
        (call(route="r" * 300), "route", "at most 256"),
        (call(arm="canary"), "arm", "control, candidate, shadow"),
        (call(latency=5), "latency", "not a field of a call event"),
        (call(input_tokens=1.5), "input_tokens", "must be an integer"),
        (call(type="click"), "type", "one of call, review, complaint"),
        ({"event_id": "x"}, "type", "is required"),
    ],
)
def test_invalid_event_names_field_and_problem(doc: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidEventError) as err:
        parse_event(doc)
    assert err.value.field == field
    assert words in err.value.problem


def test_review_and_complaint() -> None:
    review = parse_event(
        {"type": "review", "event_id": "r", "ts": 1, "workflow": "w", "route": "r", "verdict": "rejected"}
    )
    complaint = parse_event(
        {"type": "complaint", "event_id": "c", "ts": 2, "workflow": "w", "route": "r", "confirmed": True, "sample": "s"}
    )
    assert isinstance(review, ReviewEvent) and review.verdict == "rejected" and review.ts_ms == 1000
    assert isinstance(complaint, ComplaintEvent) and complaint.confirmed and complaint.sample == "s"


def test_batch_keeps_good_events_and_rejects_bad_ones_with_their_index() -> None:
    raw = orjson.dumps([call(event_id="a"), call(event_id="b", cost_usd=-2), call(event_id="c"), 7])
    decoded = decode_message(raw)
    assert [e.event_id for e in decoded.events] == ["a", "c"]
    assert [(r.index, r.error.field) for r in decoded.rejected] == [(1, "[1].cost_usd"), (3, "[3]")]
    assert orjson.loads(decoded.rejected[0].raw)["event_id"] == "b"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "empty batch"),
        (b'"hello"', "must hold an event object or an array"),
        (b'{"type": "call"}', "is required"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"latency_ms": NaN}', "not valid JSON"),
    ],
)
def test_unusable_message_is_rejected_whole_with_original_bytes(raw: bytes, words: str) -> None:
    decoded = decode_message(raw)
    assert decoded.events == []
    assert len(decoded.rejected) == 1
    assert decoded.rejected[0].index is None and decoded.rejected[0].raw == raw
    assert words in str(decoded.rejected[0].error)


def test_giant_batch_is_refused_not_parsed() -> None:
    decoded = decode_message(orjson.dumps([call()] * (MAX_BATCH + 1)))
    assert not decoded.events and "exceeds the limit" in str(decoded.rejected[0].error)


ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)


@given(
    event_id=ids,
    ts_ms=st.integers(0, 4_000_000_000_000),
    latency=st.floats(0, 1e7, allow_nan=False),
    cost=st.floats(0, 100, allow_nan=False),
    schema_valid=st.sampled_from([True, False, None]),
    status=st.sampled_from(["ok", "error", "timeout"]),
    tokens=st.none() | st.integers(0, 10**9),
    arm=st.sampled_from([None, "control", "candidate", "shadow"]),
)
def test_encode_then_decode_round_trips(
    event_id: str,
    ts_ms: int,
    latency: float,
    cost: float,
    schema_valid: bool | None,
    status: Any,
    tokens: int | None,
    arm: Any,
) -> None:
    event = CallEvent(
        event_id, ts_ms, "w", "r", latency, status, schema_valid, False, True, cost, arm, input_tokens=tokens
    )
    decoded = decode_message(encode_events([event, event]))
    assert decoded.rejected == []
    assert decoded.events == [event, event]
    assert event_to_dict(event)["ts"] * 1000 == pytest.approx(ts_ms)


def test_events_stamped_in_the_future_are_rejected_with_a_reason() -> None:
    from rollwatch.admission import reject_future

    now = 1_763_900_000_000
    decoded = decode_message(
        orjson.dumps([call(event_id="ok", ts=now / 1000), call(event_id="ahead", ts=now / 1000 + 3600)])
    )
    checked = reject_future(decoded, now)
    assert [e.event_id for e in checked.events] == ["ok"]
    assert checked.rejected[0].error.field == "ts" and "3600s ahead" in checked.rejected[0].error.problem
    assert orjson.loads(checked.rejected[0].raw)["event_id"] == "ahead"
    assert reject_future(decoded, now + 3600_000) is decoded
    # From a batch, a refusal names its item: counted among the batch's items, rejected ones too.
    batch = orjson.dumps([call(event_id="bad", ts=-1), call(event_id="ok", ts=now / 1000), call(ts=now / 1000 + 3600)])
    indexed = reject_future(decode_message(batch), now, batch=True)
    assert [(r.index, r.error.field) for r in indexed.rejected] == [(0, "[0].ts"), (2, "[2].ts")]


def test_a_batch_item_nested_too_deep_to_re_encode_costs_only_itself() -> None:
    # orjson reads 1024 levels of nesting but writes only 254: the item's dead letter
    # cannot hold it re-encoded, and it must not take the batch's good items down with it.
    deep = b"[" * 300 + b"]" * 300
    first, last = orjson.dumps(call(event_id="deep-1")), orjson.dumps(call(event_id="deep-2"))
    raw = b"[" + first + b"," + deep + b"," + last + b"]"
    decoded = decode_message(raw)
    assert [e.event_id for e in decoded.events] == ["deep-1", "deep-2"]
    assert [(r.index, r.error.field) for r in decoded.rejected] == [(1, "[1]")]
    assert b"nested too deeply" in decoded.rejected[0].raw
