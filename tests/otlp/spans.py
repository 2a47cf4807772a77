"""OTLP trace batches built with the ``opentelemetry-proto`` classes, encoded as the Collector's Kafka exporter does.

``otlp_proto`` is ``TracesData`` serialised; ``otlp_json`` is :func:`rollwatch.otlp.encode_json`
(hex ids, integer enums, int64 as strings). The decoder is also checked against a literal
Collector document in ``test_decode.py``, so the two cannot agree on a mistake unseen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status, TracesData

from rollwatch.events import CallEvent
from rollwatch.otlp import encode_json

__all__ = ["Attr", "SpanSpec", "any_value", "call_span", "otlp_json", "otlp_proto", "traces"]

Attr = str | bool | int | float | Sequence[str]


def any_value(value: Attr) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value]))


def _attributes(values: Mapping[str, Attr]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in values.items()]


@dataclass
class SpanSpec:
    """One span: ids, times in nanoseconds, kind, status and attributes."""

    trace_id: bytes
    span_id: bytes
    start_ns: int
    end_ns: int
    attributes: dict[str, Attr] = field(default_factory=dict)
    kind: int = Span.SPAN_KIND_CLIENT
    status: int = Status.STATUS_CODE_UNSET
    status_message: str = ""
    name: str = "chat"

    def build(self) -> Span:
        return Span(
            trace_id=self.trace_id,
            span_id=self.span_id,
            name=self.name,
            kind=self.kind,  # type: ignore[arg-type]
            start_time_unix_nano=self.start_ns,
            end_time_unix_nano=self.end_ns,
            attributes=_attributes(self.attributes),
            status=Status(code=self.status, message=self.status_message),  # type: ignore[arg-type]
        )


def traces(groups: Iterable[tuple[Mapping[str, Attr], Sequence[SpanSpec]]]) -> TracesData:
    """One ResourceSpans per (resource attributes, spans) group, each with one scope."""
    return TracesData(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=_attributes(resource)),
                scope_spans=[ScopeSpans(spans=[spec.build() for spec in specs])],
            )
            for resource, specs in groups
        ]
    )


def otlp_proto(data: TracesData) -> bytes:
    return data.SerializeToString()


def otlp_json(data: TracesData) -> bytes:
    return encode_json(data)


def call_span(event: CallEvent) -> SpanSpec:
    """The span an instrumented service records for ``event``, which must carry hex ids (``<trace>-<span>``).

    Only what instrumentation knows, plus the outcome attributes: no workflow (the resource's
    ``service.name``), no route (the ticket's model ids), no cost (the ticket's pricing).
    """
    assert event.trace_id is not None
    attrs: dict[str, Attr] = {"gen_ai.operation.name": "chat", "rollwatch.safety_blocked": event.safety_blocked}
    optional: dict[str, Attr | None] = {
        "rollwatch.arm": event.arm,
        "rollwatch.segment": event.segment,
        "rollwatch.schema_valid": event.schema_valid,
        "rollwatch.task_success": event.task_success,
        "rollwatch.quality_score": event.quality_score,
        "gen_ai.provider.name": event.provider,
        "gen_ai.request.model": event.model,
        "gen_ai.usage.input_tokens": event.input_tokens,
        "gen_ai.usage.output_tokens": event.output_tokens,
    }
    attrs |= {k: v for k, v in optional.items() if v is not None}
    status = Status.STATUS_CODE_UNSET
    if event.status != "ok":
        status = Status.STATUS_CODE_ERROR
        attrs["error.type"] = "TimeoutError" if event.status == "timeout" else "server_error"
    end = event.ts_ms * 1_000_000
    return SpanSpec(
        trace_id=bytes.fromhex(event.trace_id),
        span_id=bytes.fromhex(event.event_id.rsplit("-", 1)[1]),
        start_ns=end - round(event.latency_ms * 1_000_000),
        end_ns=end,
        attributes=attrs,
        status=status,
    )
