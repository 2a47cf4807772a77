"""Fuzzing the ingest path: whatever bytes arrive, nothing crashes, every bad item is
rejected with a reason, and every good event is kept exactly once."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollwatch.errors import InvalidEventError
from rollwatch.events import MAX_BATCH, decode_message, parse_event

GOOD: dict[str, Any] = {
    "type": "call",
    "event_id": "e",
    "ts": 1_763_900_000,
    "workflow": "wf",
    "route": "r",
    "latency_ms": 5,
    "status": "ok",
    "schema_valid": True,
    "safety_blocked": False,
    "task_success": None,
    "cost_usd": 0.001,
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
nasty_values = st.one_of(
    json_values,
    st.sampled_from(["x" * 100_000, -1, -1e308, 1e308, 2**63 - 1, "", "\u0000", "2026-13-45T99:99:99Z", [], {}]),
)
fields = st.sampled_from([*GOOD, "arm", "segment", "trace_id", "quality_score", "input_tokens", "verdict", "extra"])


def good_event(i: int) -> dict[str, Any]:
    return GOOD | {"event_id": f"good-{i}"}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    decoded = decode_message(raw)
    for rejected in decoded.rejected:
        assert str(rejected.error)
    assert len(decoded.events) + len(decoded.rejected) >= 1


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(fields, nasty_values) | st.none(), min_size=1, max_size=30))
def test_batches_keep_every_good_event_once_and_reject_the_rest(mutations: list[tuple[str, Any] | None]) -> None:
    items: list[Any] = []
    for i, mutation in enumerate(mutations):
        event = good_event(i)
        if mutation is not None:
            event[mutation[0]] = mutation[1]
        items.append(event)
    decoded = decode_message(orjson.dumps(items))
    expected_good = []
    for item in items:
        try:
            parse_event(item)
            expected_good.append(item["event_id"])
        except InvalidEventError:
            pass
    assert [e.event_id for e in decoded.events] == expected_good
    assert len(decoded.rejected) == len(items) - len(expected_good)
    assert all(r.index is not None and r.error.field.startswith(f"[{r.index}]") for r in decoded.rejected)


def test_nan_and_infinity_literals_are_not_json() -> None:
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        raw = orjson.dumps(GOOD).replace(b'"latency_ms":5', b'"latency_ms":' + literal)
        decoded = decode_message(raw)
        assert not decoded.events and "not valid JSON" in str(decoded.rejected[0].error)


def test_huge_numbers_and_deep_nesting_are_rejected_not_crashing() -> None:
    for raw in (
        orjson.dumps(GOOD).replace(b'"latency_ms":5', b'"latency_ms":1' + b"0" * 400),
        b"[" * 100_000 + b"]" * 100_000,
        orjson.dumps(GOOD | {"segment": {"a": {"b": {"c": [[[[]]]]}}}}),
    ):
        decoded = decode_message(raw)
        assert not decoded.events and decoded.rejected


def test_invalid_utf8_is_rejected_with_the_original_bytes() -> None:
    raw = orjson.dumps(GOOD).replace(b'"wf"', b'"w\xff\xfef"')
    decoded = decode_message(raw)
    assert decoded.rejected[0].raw == raw and "not valid JSON" in str(decoded.rejected[0].error)


def test_giant_batch_over_the_limit_is_one_rejection_and_at_the_limit_is_accepted() -> None:
    at_limit = decode_message(orjson.dumps([good_event(i) for i in range(MAX_BATCH)]))
    assert len(at_limit.events) == MAX_BATCH and not at_limit.rejected
    over = decode_message(orjson.dumps([good_event(i) for i in range(MAX_BATCH + 1)]))
    assert not over.events and len(over.rejected) == 1
