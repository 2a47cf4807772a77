"""OTLP span batches decoded and folded per second, against the JSON telemetry path, in one run.

The same 50,000 calls on the support-summary ticket are encoded three ways: telemetry
JSON arrays of 500 (what the emitter publishes), and GenAI client spans in OTLP/protobuf
and OTLP/JSON, 200 per message (the Collector example's batch size), each span beside a
server span of the same trace that the converter must skip. Every path ends in the
worker's engine (``Engine.apply``, a fresh engine per run):

* ``json``: ``decode_message`` + fold;
* ``otlp_proto`` / ``otlp_json``: ``decode_traces`` + ``convert`` + fold;
* ``bridge``: what the worker really does with spans: the bridge decodes, converts and
  re-encodes as telemetry, then the worker decodes that and folds.

Printed: µs and calls per second for each, and each OTLP path's ratio to the JSON path
(rate / JSON rate; 1.00 = as fast). Best of 3 runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

from rollwatch.events import CallEvent, decode_message, encode_events
from rollwatch.gates.engine import Engine
from rollwatch.otlp import RouteBook, convert, decode_traces, encode_json
from rollwatch.tickets.load import load_ticket

N = 50_000
TICKET = load_ticket(Path(__file__).resolve().parent.parent / "examples" / "support-summary.ticket.yaml")
BOOK = RouteBook.of(TICKET)
T0_NS = 1_780_000_000_000_000_000


def _kv(key: str, value: str | int | bool | float) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def spans(i: int) -> list[Span]:
    """A GenAI client span and the server span of the request it served."""
    route = TICKET.candidate if i % 10 == 0 else TICKET.control
    end = T0_NS + i * 10_000_000
    trace = (i + 1).to_bytes(16, "big")
    attrs = [
        _kv("gen_ai.operation.name", "chat"),
        _kv("gen_ai.provider.name", route.provider),
        _kv("gen_ai.request.model", route.model_id),
        _kv("gen_ai.response.model", route.model_id),
        _kv("gen_ai.usage.input_tokens", 1200),
        _kv("gen_ai.usage.output_tokens", 240),
        _kv("rollwatch.schema_valid", i % 97 != 0),
        _kv("rollwatch.task_success", True),
        _kv("server.address", "api.anthropic.com"),
    ]
    client = Span(
        trace_id=trace,
        span_id=(2 * i + 1).to_bytes(8, "big"),
        name=f"chat {route.model_id}",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=end - (400 + i % 977) * 1_000_000,
        end_time_unix_nano=end,
        attributes=attrs,
    )
    server = Span(
        trace_id=trace,
        span_id=(2 * i + 2).to_bytes(8, "big"),
        name="POST /summaries",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=end - 2_000_000_000,
        end_time_unix_nano=end + 5_000_000,
        attributes=[_kv("http.request.method", "POST"), _kv("http.route", "/summaries")],
    )
    return [client, server]


def traces(first: int, count: int) -> TracesData:
    resource = Resource(attributes=[_kv("service.name", TICKET.workflow), _kv("telemetry.sdk.language", "python")])
    batch = [s for i in range(first, first + count) for s in spans(i)]
    return TracesData(resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=batch)])])


def books(workflow: str) -> RouteBook | None:
    return BOOK


def run(fold: Callable[[Engine], int], repeat: int = 3) -> float:
    """Best seconds for ``fold`` into a fresh engine; it must apply all N calls."""
    best = float("inf")
    for _ in range(repeat):
        engine = Engine(TICKET.workflow)
        engine.install(TICKET)
        start = time.perf_counter()
        applied = fold(engine)
        best = min(best, time.perf_counter() - start)
        assert applied == N, applied
    return best


def main() -> None:
    proto_batches = [traces(b, 200) for b in range(0, N, 200)]
    protos = [t.SerializeToString() for t in proto_batches]
    jsons = [encode_json(t) for t in proto_batches]
    calls: list[CallEvent] = [c for raw in protos for c in convert(decode_traces(raw), books=books).calls]
    assert len(calls) == N
    telemetry = [encode_events(calls[b : b + 500]) for b in range(0, N, 500)]

    def json_path(engine: Engine) -> int:
        n = 0
        for raw in telemetry:
            events = decode_message(raw).events
            engine.apply(events)
            n += len(events)
        return n

    def otlp_path(messages: list[bytes]) -> Callable[[Engine], int]:
        def fold(engine: Engine) -> int:
            n = 0
            for raw in messages:
                events = convert(decode_traces(raw, genai_only=True), books=books).calls
                engine.apply(events)
                n += len(events)
            return n

        return fold

    def bridge_path(engine: Engine) -> int:
        n = 0
        for raw in protos:
            forwarded = encode_events(convert(decode_traces(raw, genai_only=True), books=books).calls)
            events = decode_message(forwarded).events
            engine.apply(events)
            n += len(events)
        return n

    results = {
        "json": run(json_path),
        "otlp_proto": run(otlp_path(protos)),
        "otlp_json": run(otlp_path(jsons)),
        "bridge": run(bridge_path),
    }
    convert_only = min(_timed(lambda: [convert(decode_traces(raw), books=books) for raw in protos]) for _ in range(3))
    base = N / results["json"]
    print(f"{N:,} calls; OTLP messages of 200 GenAI spans + 200 skipped server spans; telemetry arrays of 500")
    for name, seconds in results.items():
        rate = N / seconds
        per_call = seconds / N * 1e6
        print(f"{name:<11} decode+fold {per_call:6.2f} µs/call  {rate:10,.0f} calls/s  ratio to json {rate / base:.2f}")
    print(f"otlp_proto decode+convert alone {convert_only / N * 1e6:6.2f} µs/call  {N / convert_only:10,.0f} calls/s")


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
