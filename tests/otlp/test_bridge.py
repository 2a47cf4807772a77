"""The bridge forwards calls keyed by workflow and dead-letters what it cannot read, over a real broker."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import orjson
import pytest
from prometheus_client import CollectorRegistry

from rollwatch.agents.fetch import UndecodableBatch
from rollwatch.agents.options import WorkerOptions
from rollwatch.agents.otlp import CHUNK, OtlpBridge, span_names
from rollwatch.agents.records import SourceRecord
from rollwatch.events import CallEvent, decode_message
from rollwatch.kafka import ensure_topics
from rollwatch.otlp import SpanNames
from rollwatch.settings import Settings, load_settings
from rollwatch.tickets import ticket_to_json
from tests.agents.harness import produce, read_topic
from tests.control.helpers import example_ticket
from tests.otlp.spans import Attr, SpanSpec, otlp_json, otlp_proto, traces
from tests.rawbatch import corrupt_snappy_batch, produce_raw

T0: Final = 1_780_000_000_000_000_000
TICKET: Final = example_ticket()
SETTINGS: Final = load_settings(None, topic_otlp="spans")


def span(seq: int, **extra: Attr) -> SpanSpec:
    attrs: dict[str, Attr] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": TICKET.candidate.model_id}
    return SpanSpec((seq + 1).to_bytes(16, "big"), (seq + 1).to_bytes(8, "big"), T0, T0 + 10**8, attrs | extra)


def bridge(settings: Settings = SETTINGS, tickets: dict[str, bytes] | None = None) -> OtlpBridge:
    known = {TICKET.workflow: ticket_to_json(TICKET)} if tickets is None else tickets
    return OtlpBridge(settings, WorkerOptions(), tickets=known.get)


def record(value: bytes, offset: int = 7) -> SourceRecord:
    return SourceRecord("spans", 1, offset, None, value)


RESOURCE: Final = {"service.name": TICKET.workflow}


def test_calls_go_to_the_telemetry_topic_keyed_by_workflow_and_bad_spans_to_the_dead_letters() -> None:
    other = {"rollwatch.workflow": "other", "rollwatch.route": "other/a"}
    batch = traces([(RESOURCE, [span(0), span(1, **{"gen_ai.usage.input_tokens": "many"}), span(2, **other)])])
    out = bridge().translate(record(otlp_proto(batch)))
    telemetry = [o for o in out if o.topic == SETTINGS.topic_telemetry]
    assert sorted(o.key or b"" for o in telemetry) == [b"other", TICKET.workflow.encode()]
    for message in telemetry:
        decoded = decode_message(message.value)
        assert not decoded.rejected and [e.workflow for e in decoded.events] == [(message.key or b"").decode()]
    [dead] = [o for o in out if o.topic == SETTINGS.topic_deadletter]
    doc = orjson.loads(dead.value)
    assert dead.key == TICKET.workflow.encode()
    assert doc["field"] == "resourceSpans[0].scopeSpans[0].spans[1].attributes.gen_ai.usage.input_tokens"
    assert "must be an integer" in doc["reason"]
    assert doc["source"] == {"topic": "spans", "partition": 1, "offset": 7, "index": 1}
    assert orjson.loads(doc["raw"])["spanId"] == (2).to_bytes(8, "big").hex()


def test_a_message_that_is_no_trace_batch_is_dead_lettered_whole() -> None:
    [dead] = bridge().translate(record(b"\xff\x01 not protobuf"))
    doc = orjson.loads(dead.value)
    assert dead.topic == SETTINGS.topic_deadletter
    assert "neither OTLP/JSON nor OTLP/protobuf" in doc["reason"]
    assert doc["source"]["index"] is None and doc["raw_encoding"] == "base64"


def test_large_batches_are_cut_into_messages_of_at_most_chunk_calls() -> None:
    batch = traces([(RESOURCE, [span(i) for i in range(CHUNK + 5)])])
    sizes = [len(decode_message(o.value).events) for o in bridge().translate(record(otlp_json(batch)))]
    assert sizes == [CHUNK, 5]


def test_a_new_ticket_revision_is_read_again() -> None:
    tickets = {TICKET.workflow: ticket_to_json(TICKET)}
    under_test = bridge(tickets=tickets)
    assert under_test.book(TICKET.workflow) is under_test.book(TICKET.workflow)
    moved = TICKET.model_copy(update={"candidate": TICKET.candidate.model_copy(update={"model_id": "other-model"})})
    tickets[TICKET.workflow] = ticket_to_json(moved)
    book = under_test.book(TICKET.workflow)
    assert book is not None and book.match(("other-model",), None) == TICKET.candidate.route
    tickets[TICKET.workflow] = b"not: [a ticket"
    assert under_test.book(TICKET.workflow) is None


def test_settings_defaults_are_the_documented_span_names() -> None:
    assert span_names(load_settings(None)) == SpanNames()


@pytest.mark.integration
async def test_the_running_bridge_forwards_and_dead_letters_over_the_broker(kafka_settings: Settings) -> None:
    settings = kafka_settings.model_copy(update={"topic_otlp": kafka_settings.topic_telemetry + ".otlp"})
    await ensure_topics(settings)
    options = WorkerOptions(group=f"g-{settings.topic_telemetry}", session_timeout=4, rebalance_timeout=2)
    running = OtlpBridge(settings, options, tickets={TICKET.workflow: ticket_to_json(TICKET)}.get)
    good = otlp_json(traces([(RESOURCE, [span(0), span(1)])]))
    await produce(settings, settings.topic_otlp or "", [(None, b"{broken"), (None, good)])
    task = asyncio.ensure_future(running.run())
    try:
        forwarded = await read_topic(settings, settings.topic_telemetry, expect=1, timeout=30)
        dead = await read_topic(settings, settings.topic_deadletter, expect=1, timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    [message] = forwarded
    events = [e for e in decode_message(message.value).events if isinstance(e, CallEvent)]
    assert message.key == TICKET.workflow.encode()
    assert [(e.route, e.cost_usd) for e in events] == [(TICKET.candidate.route, 0.0)] * 2  # no tokens: nothing to price
    [letter] = dead
    assert "not valid JSON" in orjson.loads(letter.value)["reason"]


@pytest.mark.integration
async def test_the_running_bridge_steps_over_a_batch_nobody_can_decode(kafka_settings: Settings) -> None:
    """Before issue 15 the bridge retried such a batch forever and forwarded nothing after it."""
    settings = kafka_settings.model_copy(update={"topic_otlp": kafka_settings.topic_telemetry + ".otlp"})
    await ensure_topics(settings)
    topic = settings.topic_otlp or ""
    options = WorkerOptions(group=f"g-{settings.topic_telemetry}", session_timeout=4, rebalance_timeout=2)
    heard: list[UndecodableBatch] = []
    registry = CollectorRegistry()
    running = OtlpBridge(
        settings,
        options,
        tickets={TICKET.workflow: ticket_to_json(TICKET)}.get,
        registry=registry,
        on_undecodable=heard.append,
    )
    await produce(settings, topic, [(b"k", otlp_json(traces([(RESOURCE, [span(0)])])))])
    (first,) = await read_topic(settings, topic, expect=1)
    await produce_raw(settings, topic, first.partition, corrupt_snappy_batch(b"k", records=2))
    await produce(settings, topic, [(b"k", otlp_json(traces([(RESOURCE, [span(1)])])))])
    task = asyncio.ensure_future(running.run())
    try:
        forwarded = await read_topic(settings, settings.topic_telemetry, expect=2, timeout=30)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(forwarded) == 2
    assert [(b.topic, b.partition, b.first_offset, b.next_offset) for b in heard] == [
        (topic, first.partition, first.offset + 1, first.offset + 3)
    ]
    assert registry.get_sample_value("rollwatch_otlp_batches_total", {"result": "undecodable"}) == 1.0


def test_a_conversion_bug_costs_one_message_not_the_bridge() -> None:
    def broken(workflow: str) -> bytes | None:
        raise RuntimeError("ticket store exploded")

    under_test = OtlpBridge(SETTINGS, WorkerOptions(), tickets=broken)
    [dead] = under_test.translate(record(otlp_proto(traces([(RESOURCE, [span(0)])]))))
    doc = orjson.loads(dead.value)
    assert dead.topic == SETTINGS.topic_deadletter
    assert "internal error while converting" in doc["reason"] and "ticket store exploded" in doc["reason"]
