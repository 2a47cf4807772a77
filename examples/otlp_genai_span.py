"""What rollwatch reads from your GenAI spans: trace one model call, see the telemetry ``call`` it becomes.

Instrumentations (OpenLLMetry, the official OpenTelemetry GenAI instrumentations) already
record ``gen_ai.*`` on the span of each model call. The application adds what only it
knows, the ``rollwatch.*`` outcome attributes, on that span. Here the span is made with
the OpenTelemetry SDK, encoded by the SDK's own OTLP encoder (what the Collector receives
and its Kafka exporter writes as ``otlp_proto``), and converted as the worker would::

    python examples/otlp_genai_span.py
"""

from __future__ import annotations

import time

import orjson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from rollwatch.events import event_to_dict
from rollwatch.otlp import RouteBook, convert, decode_traces
from rollwatch.tickets.load import load_ticket

exporter = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "support-summary"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("my-app")

# The instrumentation's part: a CLIENT span per model call with the GenAI attributes.
with tracer.start_as_current_span("chat claude-sonnet-4-5-20250929", kind=SpanKind.CLIENT) as span:
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.provider.name", "anthropic")
    span.set_attribute("gen_ai.request.model", "claude-sonnet-4-5-20250929")
    time.sleep(0.02)  # the call
    span.set_attribute("gen_ai.usage.input_tokens", 1200)
    span.set_attribute("gen_ai.usage.output_tokens", 300)
    span.set_attribute("gen_ai.response.finish_reasons", ["stop"])
    # The application's part: the outcome of the call, which no instrumentation can know.
    span.set_attribute("rollwatch.schema_valid", True)
    span.set_attribute("rollwatch.task_success", True)
    span.set_attribute("rollwatch.arm", "candidate")

otlp_proto = encode_spans(exporter.get_finished_spans()).SerializeToString()
ticket = load_ticket("examples/support-summary.ticket.yaml")  # routes by model id, prices per route
result = convert(decode_traces(otlp_proto), books=lambda workflow: RouteBook.of(ticket))
for call in result.calls:
    print(orjson.dumps(event_to_dict(call), option=orjson.OPT_SORT_KEYS).decode())
for rejected in result.rejected:
    print("rejected:", rejected.error)
