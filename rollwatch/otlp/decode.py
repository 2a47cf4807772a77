"""Kafka message bytes -> ``TracesData``, in either encoding the Collector's Kafka exporter writes.

The exporter's ``otlp_proto`` (its default) is the ``TracesData`` message serialised; its
``otlp_json`` is the OTLP/JSON mapping, which is protobuf's JSON mapping with two
differences: trace and span ids are hex strings (not base64) and enums may be integers.
Both are decoded by the ``opentelemetry-proto`` classes and protobuf's ``json_format``;
the only hand-written step is the hex-to-bytes rewrite of ids, which ``json_format`` cannot
be told about. The encoding is recognised by the first byte, so one topic may carry both:
a JSON document starts with ``{``, while a serialised ``TracesData`` starts with the tag of
field 1 (``0x0a``); ``{`` (0x7b) would be field 15 as a group, which no OTLP message has.
"""

from __future__ import annotations

import base64
from typing import Any, Final, Literal

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from rollwatch.otlp.errors import InvalidBatchError

__all__ = ["Encoding", "decode_traces", "detect_encoding"]

Encoding = Literal["otlp_proto", "otlp_json"]
_ID_FIELDS: Final = ("traceId", "spanId", "parentSpanId")


def detect_encoding(raw: bytes) -> Encoding:
    """Which of the exporter's encodings ``raw`` is in (see the module docstring)."""
    return "otlp_json" if raw.lstrip()[:1] == b"{" else "otlp_proto"


def decode_traces(raw: bytes) -> TracesData:
    """Decode one message; :class:`InvalidBatchError` when it is neither encoding or holds no spans."""
    if not raw:
        raise InvalidBatchError("", "message has no value")
    traces = _from_json(raw) if detect_encoding(raw) == "otlp_json" else _from_proto(raw)
    if not traces.resource_spans:
        raise InvalidBatchError("resourceSpans", "holds no spans: not an OTLP trace batch")
    return traces


def _from_proto(raw: bytes) -> TracesData:
    traces = TracesData()
    try:
        traces.ParseFromString(raw)
    except DecodeError as exc:
        raise InvalidBatchError("", f"neither OTLP/JSON nor OTLP/protobuf trace data: {exc}") from None
    return traces


def _from_json(raw: bytes) -> TracesData:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBatchError("", f"not valid JSON: {exc}") from None
    if type(document) is not dict:
        raise InvalidBatchError("", "an OTLP/JSON batch must be an object with resourceSpans")
    _hex_ids_to_base64(document)
    traces = TracesData()
    try:
        # Receivers must ignore fields they do not know (OTLP specification, JSON encoding).
        json_format.ParseDict(document, traces, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise InvalidBatchError("", f"not OTLP/JSON trace data: {exc}") from None
    return traces


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP/JSON ids are hex; protobuf's JSON mapping reads bytes as base64."""
    for r, resource_spans in enumerate(_items(document.get("resourceSpans"))):
        for s, scope_spans in enumerate(_items(resource_spans.get("scopeSpans"))):
            for i, span in enumerate(_items(scope_spans.get("spans"))):
                path = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                _rewrite(span, path)
                for k, link in enumerate(_items(span.get("links"))):
                    _rewrite(link, f"{path}.links[{k}]")


def _items(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if type(item) is dict] if type(value) is list else []


def _rewrite(node: dict[str, Any], path: str) -> None:
    for field in _ID_FIELDS:
        value = node.get(field)
        if type(value) is not str or not value:
            continue
        try:
            node[field] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
        except ValueError:
            raise InvalidBatchError(f"{path}.{field}", f"must be a hex string, got {value[:40]!r}") from None
