"""The Python validator and ``schemas/telemetry-event.v1.json`` give the same verdicts.

A hand-picked corpus covers each rule; hypothesis then throws field values of every
JSON type at both, so a rule added to one side and forgotten on the other shows up.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwatch.errors import InvalidEventError
from rollwatch.events import parse_event
from tests.conftest import schema_validator

SCHEMA = schema_validator("telemetry-event.v1.json")
CALL: dict[str, Any] = {
    "type": "call",
    "event_id": "e-1",
    "ts": 1_763_900_000,
    "workflow": "wf",
    "route": "r",
    "latency_ms": 10,
    "status": "ok",
    "schema_valid": None,
    "safety_blocked": False,
    "task_success": True,
    "cost_usd": 0,
}
REVIEW: dict[str, Any] = {
    "type": "review",
    "event_id": "r-1",
    "ts": "2026-11-23T10:00:00Z",
    "workflow": "wf",
    "route": "r",
    "verdict": "approved",
}
COMPLAINT: dict[str, Any] = {
    "type": "complaint",
    "event_id": "c-1",
    "ts": 5.5,
    "workflow": "wf",
    "route": "r",
    "confirmed": False,
}


def python_accepts(doc: Any) -> bool:
    try:
        parse_event(doc)
    except InvalidEventError:
        return False
    return True


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc = dict(base)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


VALID = [
    CALL,
    REVIEW,
    COMPLAINT,
    with_(
        CALL,
        arm="candidate",
        segment="eu",
        trace_id="t",
        provider="p",
        model="m",
        prompt_version="v3",
        input_tokens=5,
        output_tokens=7.0,
        tool_calls=0,
        quality_score=4.5,
        schema_valid=False,
        status="timeout",
    ),
    with_(CALL, arm=None, segment=None, quality_score=None),
    with_(CALL, ts="2026-11-23T10:00:00.123456789+05:30"),
    with_(CALL, ts="2026-11-23t10:00:00z", latency_ms=0.0, cost_usd=1e-9),
    with_(CALL, ts=0, event_id="x" * 256),
    with_(REVIEW, call_event_id="e-1", reviewer="ana", arm="control"),
    with_(COMPLAINT, sample="s" * 4096, call_event_id="e-9", confirmed=True),
]
INVALID = [
    {},
    [],
    "call",
    3,
    None,
    with_(CALL, type=...),
    with_(CALL, type="click"),
    with_(CALL, type=None),
    with_(CALL, event_id=...),
    with_(CALL, event_id=""),
    with_(CALL, event_id="x" * 257),
    with_(CALL, event_id=5),
    with_(CALL, ts=...),
    with_(CALL, ts=-1),
    with_(CALL, ts=1e12),
    with_(CALL, ts="yesterday"),
    with_(CALL, ts="2026-11-23T10:00:00"),
    with_(CALL, ts="2026-02-30T10:00:00Z"),
    with_(CALL, ts=True),
    with_(CALL, workflow=None),
    with_(CALL, route=["r"]),
    with_(CALL, latency_ms=-0.5),
    with_(CALL, latency_ms="1"),
    with_(CALL, latency_ms=None),
    with_(CALL, latency_ms=False),
    with_(CALL, status="OK"),
    with_(CALL, status=None),
    with_(CALL, schema_valid=...),
    with_(CALL, schema_valid=0),
    with_(CALL, safety_blocked=None),
    with_(CALL, task_success="true"),
    with_(CALL, task_success=...),
    with_(CALL, cost_usd=-1e-9),
    with_(CALL, arm="canary"),
    with_(CALL, arm=1),
    with_(CALL, segment=""),
    with_(CALL, trace_id=7),
    with_(CALL, input_tokens=-1),
    with_(CALL, output_tokens=1.5),
    with_(CALL, tool_calls="2"),
    with_(CALL, quality_score=-1),
    with_(CALL, quality_score="good"),
    with_(CALL, verdict="approved"),
    with_(CALL, extra=1),
    with_(REVIEW, verdict="maybe"),
    with_(REVIEW, verdict=...),
    with_(REVIEW, latency_ms=3),
    with_(COMPLAINT, confirmed=None),
    with_(COMPLAINT, sample=""),
    with_(COMPLAINT, sample="s" * 4097),
]


@pytest.mark.parametrize("doc", VALID)
def test_both_accept(doc: Any) -> None:
    assert SCHEMA.is_valid(doc)
    assert python_accepts(doc)


@pytest.mark.parametrize("doc", INVALID)
def test_both_reject(doc: Any) -> None:
    assert not SCHEMA.is_valid(doc)
    assert not python_accepts(doc)


def test_batch_form_is_in_the_schema() -> None:
    assert SCHEMA.is_valid([CALL, REVIEW])
    assert not SCHEMA.is_valid([])
    assert not SCHEMA.is_valid([CALL, with_(CALL, status="?")])


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(-1e13, 1e13, allow_nan=False),
    st.text(max_size=5),
    st.sampled_from(["ok", "error", "candidate", "approved", "rejected", "2026-11-23T10:00:00Z", "x" * 257]),
)


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from([CALL, REVIEW, COMPLAINT]),
    field=st.sampled_from(sorted({*CALL, *REVIEW, *COMPLAINT, "arm", "quality_score", "input_tokens", "sample", "x"})),
    value=json_scalars | st.lists(json_scalars, max_size=2) | st.just(...),
)
def test_same_verdict_on_mutated_documents(base: dict[str, Any], field: str, value: Any) -> None:
    doc = orjson.loads(orjson.dumps(with_(base, **{field: value}))) if value is not ... else with_(base, **{field: ...})
    assert SCHEMA.is_valid(doc) == python_accepts(doc), doc
