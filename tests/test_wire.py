"""The msgspec fast path agrees with the contract's own validator, and is taken on clean traffic.

``decode_message`` = fast path, then the hand-written validator for whatever it declines.
The rule checked here: the fast path may decline valid input, never accept invalid input,
and what it accepts it turns into exactly the records the validator would build.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwatch.events import MAX_BATCH, DecodedMessage, decode_checked, decode_message, encode_events
from rollwatch.synth import Traffic, generate
from rollwatch.wire import fast_decode
from tests.test_contract_events import CALL, COMPLAINT, INVALID, REVIEW, VALID, json_scalars, with_


def verdicts(decoded: DecodedMessage) -> tuple[list[Any], list[tuple[int | None, str, bytes]]]:
    return decoded.events, [(r.index, str(r.error), r.raw) for r in decoded.rejected]


def assert_agrees(raw: bytes) -> None:
    checked = decode_checked(raw)
    fast = fast_decode(raw)
    if fast is not None:
        assert not checked.rejected, (raw, [str(r.error) for r in checked.rejected])
        assert fast == checked.events
    assert verdicts(decode_message(raw)) == verdicts(checked)


@pytest.mark.parametrize("doc", VALID + INVALID)
def test_corpus_alone_and_in_a_batch(doc: Any) -> None:
    assert_agrees(orjson.dumps(doc))
    assert_agrees(orjson.dumps([CALL, doc, REVIEW]))


def test_clean_traffic_takes_the_fast_path() -> None:
    traffic = Traffic(regression="complaints", duration_ms=120_000, onset_ms=0, candidate_share=0.5, seed=3)
    events = list(generate(traffic))
    kinds = {e.type for e in events}
    assert kinds == {"call", "review", "complaint"}
    raw = encode_events(events)
    assert fast_decode(raw) == events
    assert fast_decode(encode_events(events[:1])) == events[:1]
    assert decode_message(raw).events == events


@pytest.mark.parametrize(
    ("why", "raw"),
    [
        ("RFC 3339 ts", orjson.dumps(with_(CALL, ts="2026-11-23T10:00:00Z"))),
        ("integral float count", orjson.dumps(with_(CALL, output_tokens=7.0))),
        ("empty batch", b"[]"),
        ("oversized batch", orjson.dumps([CALL] * (MAX_BATCH + 1))),
        ("not JSON", b"{"),
        ("invalid UTF-8", b'{"type": "call", "event_id": "\xff"}'),
        ("deep nesting", b"[" * 5000 + b"]" * 5000),
    ],
)
def test_declined_messages_still_get_the_validators_verdict(why: str, raw: bytes) -> None:
    assert fast_decode(raw) is None, why
    assert verdicts(decode_message(raw)) == verdicts(decode_checked(raw))


def test_valid_input_the_fast_path_declines_is_still_accepted() -> None:
    raw = orjson.dumps([with_(CALL, ts="2026-11-23T10:00:00Z"), with_(CALL, event_id="e-2", output_tokens=7.0)])
    decoded = decode_message(raw)
    assert not decoded.rejected
    assert [e.event_id for e in decoded.events] == ["e-1", "e-2"]


def test_duplicate_keys_resolve_as_the_validator_resolves_them() -> None:
    raw = b'{"type":"call","event_id":"a","event_id":"b","ts":1,"workflow":"w","route":"r","latency_ms":1,' + (
        b'"status":"ok","schema_valid":null,"safety_blocked":false,"task_success":null,"cost_usd":0}'
    )
    assert_agrees(raw)
    assert decode_message(raw).events[0].event_id == "b"


def test_rounding_of_ts_to_milliseconds_matches() -> None:
    for ts in (0, 1.0005, 1_763_900_000.1234, 1_763_900_000.9995, 99_999_999_999.999):
        assert_agrees(orjson.dumps(with_(CALL, ts=ts)))


texts = st.text(max_size=3) | st.sampled_from(["", "x" * 256, "x" * 257, "\U0001f600" * 256, "\U0001f600" * 257])
values = json_scalars | texts | st.floats(allow_nan=False, allow_infinity=False) | st.integers() | st.just(...)


@settings(max_examples=600, deadline=None)
@given(
    base=st.sampled_from([CALL, REVIEW, COMPLAINT]),
    changes=st.dictionaries(
        st.sampled_from(
            sorted({*CALL, *REVIEW, *COMPLAINT, "arm", "quality_score", "input_tokens", "tool_calls", "sample", "x"})
        ),
        values | st.lists(json_scalars, max_size=2),
        max_size=3,
    ),
    batch=st.booleans(),
)
def test_same_verdicts_on_mutated_messages(base: dict[str, Any], changes: dict[str, Any], batch: bool) -> None:
    doc = with_(base, **changes)
    try:
        raw = orjson.dumps([CALL, doc] if batch else doc)
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
        return
    assert_agrees(raw)
