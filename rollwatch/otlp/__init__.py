"""OpenTelemetry GenAI spans as rollwatch telemetry: decode OTLP batches, map spans to ``call`` events.

Pure (no Kafka, no clock): :mod:`rollwatch.agents.otlp` moves the bytes. Teams whose LLM
calls are already traced with the GenAI semantic conventions point the Collector's Kafka
exporter at a topic and need no rollwatch emitter in their services.
"""

from __future__ import annotations

from rollwatch.otlp.convert import Conversion, RejectedSpan, convert
from rollwatch.otlp.decode import Encoding, decode_traces, detect_encoding, encode_json
from rollwatch.otlp.errors import InvalidBatchError, InvalidSpanError, OtlpError
from rollwatch.otlp.names import SpanNames
from rollwatch.otlp.routes import RouteBook, cost_usd

__all__ = [
    "Conversion",
    "Encoding",
    "InvalidBatchError",
    "InvalidSpanError",
    "OtlpError",
    "RejectedSpan",
    "RouteBook",
    "SpanNames",
    "convert",
    "cost_usd",
    "decode_traces",
    "detect_encoding",
    "encode_json",
]
