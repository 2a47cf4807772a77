"""Errors of the OTLP ingest: a batch that cannot be read, and a GenAI span that cannot become a call.

Both are :class:`~rollwatch.errors.ContractError`\\ s, so a dead letter names the field
(``resourceSpans[0].scopeSpans[1].spans[3].attributes.gen_ai.usage.input_tokens``) and
the problem, exactly like a rejected telemetry event.
"""

from __future__ import annotations

from rollwatch.errors import ContractError, RollwatchError

__all__ = ["InvalidBatchError", "InvalidSpanError", "OtlpError"]


class OtlpError(RollwatchError):
    """Root of the errors of :mod:`rollwatch.otlp`."""


class InvalidBatchError(OtlpError, ContractError):
    """A Kafka message that is neither OTLP/protobuf nor OTLP/JSON trace data; dead-lettered whole."""


class InvalidSpanError(OtlpError, ContractError):
    """A GenAI span that cannot be turned into a telemetry call; dead-lettered on its own."""
