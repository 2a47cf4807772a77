"""Both encodings of the Collector's Kafka exporter are read; anything else is refused with a reason."""

from __future__ import annotations

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from rollwatch.otlp import InvalidBatchError, convert, decode_traces, detect_encoding
from tests.otlp.spans import SpanSpec, otlp_json, otlp_proto, traces

# OTLP/JSON as written by the Collector's otlp_json marshaler (hex ids, enums as integers,
# 64-bit integers as strings), plus a field this reader does not know.
COLLECTOR_JSON = b"""{"resourceSpans":[{"resource":{"attributes":[
  {"key":"service.name","value":{"stringValue":"support-summary"}}]},
 "scopeSpans":[{"scope":{"name":"opentelemetry.instrumentation.openai"},"spans":[
  {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173",
   "name":"chat gpt-4o","kind":3,"startTimeUnixNano":"1780000000000000000","endTimeUnixNano":"1780000000250000000",
   "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
     {"key":"rollwatch.route","value":{"stringValue":"support-summary/stable"}},
     {"key":"gen_ai.usage.input_tokens","value":{"intValue":"42"}}],
   "status":{"code":2,"message":"boom"},"futureField":{"x":1}}]}]}]}"""


def test_a_collector_json_batch_is_read_with_hex_ids_and_integer_enums() -> None:
    assert detect_encoding(COLLECTOR_JSON) == "otlp_json"
    [call] = convert(decode_traces(COLLECTOR_JSON)).calls
    assert call.trace_id == "5b8efff798038103d269b633813fc60c"
    assert call.event_id == "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"
    assert (call.latency_ms, call.status, call.input_tokens) == (250.0, "error", 42)


def test_protobuf_is_recognised_by_its_first_byte() -> None:
    raw = otlp_proto(traces([({}, [SpanSpec(b"\x01" * 16, b"\x02" * 8, 1, 2)])]))
    assert detect_encoding(raw) == "otlp_proto"
    assert decode_traces(raw).resource_spans[0].scope_spans[0].spans[0].span_id == b"\x02" * 8


def test_json_ids_survive_the_round_trip() -> None:
    data = traces([({}, [SpanSpec(bytes(range(16)), bytes(range(8)), 1, 2)])])
    assert decode_traces(otlp_json(data)) == data


@pytest.mark.parametrize(
    ("raw", "field", "problem"),
    [
        (b"", "", "message has no value"),
        (b"\xff\xfe garbage", "", "neither OTLP/JSON nor OTLP/protobuf"),
        (b"{not json", "", "not valid JSON"),
        (b'{"resourceSpans": 3}', "", "not OTLP/JSON trace data"),
        (b"{}", "resourceSpans", "holds no spans"),
        (
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}',
            "resourceSpans[0].scopeSpans[0].spans[0].traceId",
            "must be a hex string",
        ),
    ],
)
def test_a_message_that_is_no_trace_batch_is_refused_with_a_reason(raw: bytes, field: str, problem: str) -> None:
    with pytest.raises(InvalidBatchError) as caught:
        decode_traces(raw)
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_genai_only_blanks_other_json_spans_in_place_and_converts_the_same() -> None:
    genai = {"gen_ai.operation.name": "chat", "rollwatch.workflow": "wf", "rollwatch.route": "wf/a"}
    bad = genai | {"gen_ai.usage.input_tokens": "x"}
    specs = [
        SpanSpec(b"\x01" * 16, b"\x01" * 8, 1, 2, {"http.route": "/"}),
        SpanSpec(b"\x02" * 16, b"\x02" * 8, 1, 2, dict(genai)),
        SpanSpec(b"\x03" * 16, b"\x03" * 8, 1, 2, dict(genai), kind=Span.SPAN_KIND_SERVER),
        SpanSpec(b"\x04" * 16, b"\x04" * 8, 1, 2, dict(bad)),
    ]
    raw = otlp_json(traces([({}, specs)]))
    blanked = decode_traces(raw, genai_only=True)
    assert [s.span_id for s in blanked.resource_spans[0].scope_spans[0].spans] == [b"", b"\x02" * 8, b"", b"\x04" * 8]
    full, fast = convert(decode_traces(raw)), convert(blanked)
    assert (fast.calls, fast.skipped) == (full.calls, full.skipped) == (fast.calls, 2)
    assert [(r.index, r.error.field) for r in fast.rejected] == [(r.index, r.error.field) for r in full.rejected]
    assert [r.index for r in fast.rejected] == [3]
