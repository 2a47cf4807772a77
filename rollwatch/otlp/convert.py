"""OTLP spans -> telemetry ``call`` events: the GenAI semantic conventions read as rollwatch's contract.

Pure: no Kafka, no clock. The bridge in :mod:`rollwatch.agents.otlp` feeds it decoded
batches and the ticket in force per workflow, and forwards what comes out.

Mapping (the README's table is generated from the same names, :mod:`rollwatch.otlp.names`):

* **which spans**: kind ``CLIENT`` (or ``INTERNAL``, which the conventions allow for a model
  run in-process) with ``gen_ai.operation.name`` in ``SpanNames.operations``. Everything
  else is skipped after one look at the kind and the attribute keys, without building
  anything: most spans of a trace are HTTP, database and framework spans.
* **workflow, route, arm, segment, prompt version**: the first attribute of
  :class:`~rollwatch.otlp.names.SpanNames` present on the span, then on its resource.
  Without a route attribute the ticket's routes are matched by model (and prompt version).
* **ts** is the span's end (when the answer was there), **latency_ms** its duration.
* **status**: ``error`` when the span status is ERROR or ``error.type`` is set; ``timeout``
  when that type or the status message names a timeout or deadline.
* **tokens** from ``gen_ai.usage.input_tokens``/``output_tokens`` (older instrumentations:
  ``prompt_tokens``/``completion_tokens``); **provider** from ``gen_ai.provider.name``
  (``gen_ai.system``); **model** from ``gen_ai.response.model`` (``gen_ai.request.model``).
* **cost_usd**: ``rollwatch.cost_usd``, else tokens times the route's ticket pricing, else 0
  (counted as unpriced).
* **outcome** fields come from ``rollwatch.*`` attributes; ``safety_blocked`` defaults to a
  ``content_filter`` finish reason. ``event_id`` is ``<trace id>-<span id>`` (hex), so a
  batch delivered twice is dropped as duplicates downstream, and reviews can point at it.

A GenAI span that cannot be mapped (no workflow, a bad id, an attribute of the wrong
type, an end before its start) is rejected on its own, with the path of the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status, TracesData

from rollwatch.errors import InvalidEventError
from rollwatch.events import CallEvent, parse_event
from rollwatch.otlp.decode import encode_json
from rollwatch.otlp.errors import InvalidSpanError
from rollwatch.otlp.names import (
    COST,
    EVENT_ID,
    OPERATION,
    QUALITY_SCORE,
    SAFETY_BLOCKED,
    SCHEMA_VALID,
    TASK_SUCCESS,
    TOOL_CALLS,
    SpanNames,
)
from rollwatch.otlp.routes import RouteBook, cost_usd

__all__ = ["Conversion", "RejectedSpan", "convert"]

_KINDS: Final = frozenset({Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL})
_TIMEOUT: Final = re.compile(r"time[ _-]?d?[ _-]?out|deadline", re.IGNORECASE)
_ZERO_TRACE: Final = bytes(16)
_ZERO_SPAN: Final = bytes(8)
_OTHER: Final = object()
"""A key-value list, bytes or empty value: no field of a call is read from one."""

Attributes = dict[str, Any]
"""Attribute values as Python values: str, bool, int, float, a list for an array, :data:`_OTHER` otherwise."""
Books = Callable[[str], RouteBook | None]


@dataclass(frozen=True, slots=True)
class RejectedSpan:
    """A GenAI span that could not become a call; ``index`` counts spans in batch order."""

    index: int
    error: InvalidSpanError
    raw: bytes
    workflow: str | None = None


@dataclass(slots=True)
class Conversion:
    """What one batch held: calls, rejected GenAI spans, and how many spans were not model calls."""

    calls: list[CallEvent] = field(default_factory=list)
    rejected: list[RejectedSpan] = field(default_factory=list)
    skipped: int = 0
    unpriced: int = 0
    """Calls whose cost was unknown (no ``rollwatch.cost_usd``, no pricing for their route): counted at 0."""


def _no_books(workflow: str) -> RouteBook | None:
    return None


def convert(traces: TracesData, names: SpanNames | None = None, books: Books = _no_books) -> Conversion:
    """Every GenAI call span of ``traces`` as a validated :class:`CallEvent`; never raises on content."""
    names = names or SpanNames()
    operations = frozenset(names.operations)
    out = Conversion()
    index = -1
    for r, resource_spans in enumerate(traces.resource_spans):
        resource: Attributes | None = None
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for i, span in enumerate(scope_spans.spans):
                index += 1
                if span.kind not in _KINDS or not _is_call(span, operations):
                    out.skipped += 1
                    continue
                if resource is None:
                    resource = _plain(resource_spans.resource.attributes)
                path = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                attrs = _plain(span.attributes)
                try:
                    call, priced = _call(span, attrs, resource, names, books, path)
                except InvalidSpanError as exc:
                    workflow = _lookup_quietly(names.workflow, attrs, resource)
                    out.rejected.append(RejectedSpan(index, exc, encode_json(span), workflow))
                    continue
                out.calls.append(call)
                out.unpriced += not priced
    return out


def _is_call(span: Span, operations: frozenset[str]) -> bool:
    kv: KeyValue
    for kv in span.attributes:
        if kv.key == OPERATION:
            return kv.value.string_value in operations
    return False


def _call(
    span: Span, attrs: Attributes, resource: Attributes, names: SpanNames, books: Books, path: str
) -> tuple[CallEvent, bool]:
    trace_id, span_id = bytes(span.trace_id), bytes(span.span_id)
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        raise InvalidSpanError(f"{path}.traceId", f"must be 16 bytes, not all zero, got {trace_id.hex()!r}")
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        raise InvalidSpanError(f"{path}.spanId", f"must be 8 bytes, not all zero, got {span_id.hex()!r}")
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if not start or not end:
        raise InvalidSpanError(f"{path}.endTimeUnixNano", "start and end times are required")
    if end < start:
        raise InvalidSpanError(f"{path}.endTimeUnixNano", f"ends before it starts ({end} < {start})")
    get = _Reader(attrs, resource, path)
    workflow = get.first(names.workflow)
    if workflow is None:
        raise InvalidSpanError(f"{path}.attributes", f"names no workflow: none of {', '.join(names.workflow)}")
    book = books(workflow)
    request_model = get.string("gen_ai.request.model")
    response_model = get.string("gen_ai.response.model")
    prompt_version = get.first(names.prompt_version)
    route = get.first(names.route)
    if route is None and book is not None:
        route = book.match((request_model, response_model), prompt_version)
    if route is None:
        source = "the ticket's routes by model" if book else "no ticket for this workflow"
        raise InvalidSpanError(f"{path}.attributes", f"names no route: none of {', '.join(names.route)} ({source})")
    input_tokens = get.count("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
    output_tokens = get.count("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
    cost = get.number(COST)
    priced = cost is not None
    if cost is None:
        pricing = book.pricing(route) if book else None
        priced = pricing is not None
        cost = cost_usd(pricing, input_tokens, output_tokens) if pricing else 0.0
    error_type = get.string("error.type")
    if span.status.code == Status.STATUS_CODE_ERROR or error_type:
        status = "timeout" if _TIMEOUT.search(error_type or span.status.message) else "error"
    else:
        status = "ok"
    safety = get.boolean(SAFETY_BLOCKED)
    if safety is None:
        safety = "content_filter" in get.strings("gen_ai.response.finish_reasons")
    event: dict[str, Any] = {
        "type": "call",
        "event_id": get.string(EVENT_ID) or f"{trace_id.hex()}-{span_id.hex()}",
        "ts": end / 1e9,
        "workflow": workflow,
        "route": route,
        "latency_ms": (end - start) / 1e6,
        "status": status,
        "schema_valid": get.boolean(SCHEMA_VALID),
        "safety_blocked": safety,
        "task_success": get.boolean(TASK_SUCCESS),
        "cost_usd": cost,
        "trace_id": trace_id.hex(),
    }
    optional = {
        "arm": get.first(names.arm),
        "segment": get.first(names.segment),
        "provider": get.string("gen_ai.provider.name") or get.string("gen_ai.system"),
        "model": response_model or request_model,
        "prompt_version": prompt_version,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "tool_calls": get.count(TOOL_CALLS),
        "quality_score": get.number(QUALITY_SCORE),
    }
    event.update((k, v) for k, v in optional.items() if v is not None)
    try:
        call = parse_event(event)
    except InvalidEventError as exc:
        raise InvalidSpanError(path, f"as telemetry field {exc.field}: {exc.problem}") from None
    assert isinstance(call, CallEvent)
    return call, priced


def _plain(kvs: Iterable[KeyValue]) -> Attributes:
    """Attributes as Python values in one pass (each protobuf access costs a call, so each is made once)."""
    out: Attributes = {}
    for kv in kvs:
        value: AnyValue = kv.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [v.string_value if v.HasField("string_value") else _OTHER for v in value.array_value.values]
        elif kind in _SCALARS:
            out[kv.key] = getattr(value, kind)
        else:
            out[kv.key] = _OTHER
    return out


_SCALARS: Final = frozenset({"string_value", "bool_value", "int_value", "double_value"})


def _kind(value: Any) -> str:
    if value is _OTHER:
        return "another kind of value"
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a double", list: "an array"}[type(value)]


class _Reader:
    """Typed attribute lookups, span first then resource; a value of the wrong type is an error, not a None."""

    __slots__ = ("_attrs", "_path", "_values")

    def __init__(self, attrs: Attributes, resource: Attributes, path: str) -> None:
        self._attrs = attrs
        self._values = resource | attrs if resource else attrs
        self._path = path

    def _wrong(self, key: str, expected: str, value: Any) -> InvalidSpanError:
        where = f"{self._path}.attributes.{key}" if key in self._attrs else f"resource.attributes.{key} of {self._path}"
        return InvalidSpanError(where, f"must be {expected}, got {_kind(value)} ({value!r:.40})")

    def string(self, key: str) -> str | None:
        value = self._values.get(key)
        if value is None or type(value) is str:
            return value or None
        raise self._wrong(key, "a string", value)

    def first(self, keys: tuple[str, ...]) -> str | None:
        for key in keys:
            value = self.string(key)
            if value:
                return value
        return None

    def boolean(self, key: str) -> bool | None:
        value = self._values.get(key)
        if value is None or type(value) is bool:
            return value
        raise self._wrong(key, "a boolean", value)

    def number(self, key: str) -> float | None:
        value = self._values.get(key)
        if value is None:
            return None
        if type(value) is not float and type(value) is not int:
            raise self._wrong(key, "a number", value)
        if not math.isfinite(value) or value < 0:
            raise self._wrong(key, "a finite number >= 0", value)
        return float(value)

    def count(self, *keys: str) -> int | None:
        for key in keys:
            value = self._values.get(key)
            if value is None:
                continue
            if type(value) is not int:
                raise self._wrong(key, "an integer", value)
            if value < 0:
                raise self._wrong(key, ">= 0", value)
            return value
        return None

    def strings(self, key: str) -> list[str]:
        value = self._values.get(key)
        if value is None:
            return []
        if type(value) is str:
            return [value]
        if type(value) is not list:
            raise self._wrong(key, "an array of strings", value)
        return [v for v in value if type(v) is str]


def _lookup_quietly(keys: tuple[str, ...], attrs: Attributes, resource: Attributes) -> str | None:
    """The span's workflow for keying its dead letter, if it has a readable one."""
    for source in (attrs, resource):
        for key in keys:
            value = source.get(key)
            if type(value) is str and value:
                return value
    return None
