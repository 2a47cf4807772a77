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
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from rollwatch.otlp.errors import InvalidBatchError
from rollwatch.otlp.names import OPERATION

__all__ = ["Encoding", "decode_traces", "detect_encoding", "encode_json"]

Encoding = Literal["otlp_proto", "otlp_json"]
_ID_FIELDS: Final = ("traceId", "spanId", "parentSpanId")
_GENAI_KINDS: Final = (1, 3, "SPAN_KIND_INTERNAL", "SPAN_KIND_CLIENT")
"""INTERNAL and CLIENT, as OTLP/JSON may write them (integers, or the enum's names)."""


def detect_encoding(raw: bytes) -> Encoding:
    """Which of the exporter's encodings ``raw`` is in (see the module docstring)."""
    return "otlp_json" if raw.lstrip()[:1] == b"{" else "otlp_proto"


def encode_json(message: Message) -> bytes:
    """A message (``TracesData``, a ``Span``, ...) in OTLP/JSON as the Collector writes it: hex ids, integer enums.

    For dead letters a person can read, and for tests and benchmarks that play the Collector.
    """
    doc = json_format.MessageToDict(message, use_integers_for_enums=True)
    _ids_to_hex(doc)
    return orjson.dumps(doc)


def _ids_to_hex(node: Any) -> None:
    if type(node) is dict:
        for key, value in node.items():
            if key in _ID_FIELDS and type(value) is str:
                node[key] = base64.b64decode(value).hex()
            else:
                _ids_to_hex(value)
    elif type(node) is list:
        for item in node:
            _ids_to_hex(item)


def decode_traces(raw: bytes, *, genai_only: bool = False) -> TracesData:
    """Decode one message; :class:`InvalidBatchError` when it is neither encoding or holds no spans.

    With ``genai_only``, spans of OTLP/JSON that cannot be GenAI calls (kind not CLIENT or
    INTERNAL, or no ``gen_ai.operation.name`` attribute) are left empty in place, so their
    positions stay and :func:`~rollwatch.otlp.convert.convert` skips them: ``json_format``
    is pure Python, and parsing spans nobody reads was half the cost of a mixed batch
    (``bench/bench_otlp.py``). Protobuf is parsed in C whatever it holds.
    """
    if not raw:
        raise InvalidBatchError("", "message has no value")
    traces = _from_json(raw, genai_only) if detect_encoding(raw) == "otlp_json" else _from_proto(raw)
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


def _from_json(raw: bytes, genai_only: bool) -> TracesData:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBatchError("", f"not valid JSON: {exc}") from None
    if type(document) is not dict:
        raise InvalidBatchError("", "an OTLP/JSON batch must be an object with resourceSpans")
    _prepare(document, genai_only)
    traces = TracesData()
    try:
        # Receivers must ignore fields they do not know (OTLP specification, JSON encoding).
        json_format.ParseDict(document, traces, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise InvalidBatchError("", f"not OTLP/JSON trace data: {exc}") from None
    return traces


def _prepare(document: dict[str, Any], genai_only: bool) -> None:
    """Hex ids to base64 (protobuf's JSON mapping reads bytes as base64); blank non-GenAI spans if asked."""
    for r, resource_spans in enumerate(_items(document.get("resourceSpans"))):
        for s, scope_spans in enumerate(_items(resource_spans.get("scopeSpans"))):
            spans = scope_spans.get("spans")
            if type(spans) is not list:
                continue
            for i, span in enumerate(spans):
                if type(span) is not dict:
                    continue
                if genai_only and not _maybe_genai(span):
                    spans[i] = {}
                    continue
                path = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                _rewrite(span, path)
                for k, link in enumerate(_items(span.get("links"))):
                    _rewrite(link, f"{path}.links[{k}]")


def _maybe_genai(span: dict[str, Any]) -> bool:
    if span.get("kind") not in _GENAI_KINDS:
        return False
    attributes = span.get("attributes")
    return type(attributes) is list and any(type(a) is dict and a.get("key") == OPERATION for a in attributes)


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
