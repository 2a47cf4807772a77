"""``rollwatch demo``: a self-contained round trip on the embedded broker.

It starts a private broker on a free port (so it never collides with one already
running), creates the topics, publishes a handful of telemetry events (single and
batched messages, both arms), reads them back through the same validator the worker
uses, and prints them. It exits non-zero if anything sent did not come back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from rollwatch.broker import EmbeddedBroker, free_port
from rollwatch.events import Arm, CallEvent, ComplaintEvent, Event, ReviewEvent, decode_message, encode_events
from rollwatch.kafka import client_options, ensure_topics, make_producer
from rollwatch.settings import Settings, load_settings

__all__ = ["run_demo", "sample_events"]


def sample_events(now_ms: int) -> list[Event]:
    """A few calls on the control and candidate routes of one workflow, a review and a complaint."""
    wf, control, candidate = "support-summary", "anthropic/sonnet@prompt-41", "openai/gpt-5-mini@prompt-42"
    events: list[Event] = []
    for i in range(8):
        arm: Arm = "candidate" if i % 4 == 3 else "control"
        route = candidate if arm == "candidate" else control
        events.append(
            CallEvent(
                event_id=f"demo-{i}",
                ts_ms=now_ms + i * 250,
                workflow=wf,
                route=route,
                latency_ms=640.0 + 37 * i,
                status="ok",
                schema_valid=i != 7,
                safety_blocked=False,
                task_success=True,
                cost_usd=0.0021 + i / 10_000,
                arm=arm,
                trace_id=f"trace-{i:04d}",
                input_tokens=1200,
                output_tokens=180 + i,
            )
        )
    events.append(ReviewEvent("demo-review-1", now_ms + 2_500, wf, candidate, "rejected", arm="candidate"))
    events.append(
        ComplaintEvent(
            "demo-complaint-1",
            now_ms + 3_000,
            wf,
            candidate,
            confirmed=True,
            arm="candidate",
            sample="The summary says the refund was issued; it was not.",
        )
    )
    return events


def _describe(event: Event) -> str:
    clock = datetime.fromtimestamp(event.ts_ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
    head = f"{clock}  {event.workflow:<16} {event.arm or '-':<9} {event.type:<9} {event.event_id:<16}"
    if isinstance(event, CallEvent):
        schema = {True: "valid", False: "INVALID", None: "n/a"}[event.schema_valid]
        return f"{head} {event.latency_ms:7.0f} ms  schema {schema:<7}  ${event.cost_usd:.4f}  {event.route}"
    if isinstance(event, ReviewEvent):
        return f"{head} review {event.verdict}  {event.route}"
    return f"{head} complaint confirmed={event.confirmed}: {event.sample}"


async def _round_trip(settings: Settings, out: Callable[[str], None]) -> int:
    created = await ensure_topics(settings)
    out(f"topics created: {', '.join(created) or '(all existed)'}")
    events = sample_events(int(time.time() * 1000))
    producer = make_producer(settings)
    await producer.start()
    try:
        # The first six go one per message; the rest as one batched message, as the emitter sends them.
        for event in events[:6]:
            await producer.send_and_wait(settings.topic_telemetry, encode_events([event]), key=event.workflow.encode())
        batch = events[6:]
        await producer.send_and_wait(settings.topic_telemetry, encode_events(batch), key=batch[0].workflow.encode())
    finally:
        await producer.stop()
    out(f"sent {len(events)} events in 7 messages to {settings.topic_telemetry}")

    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    received: list[Event] = []
    try:
        partitions = [TopicPartition(settings.topic_telemetry, p) for p in range(settings.telemetry_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 20
        while len(received) < len(events) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    decoded = decode_message(record.value or b"")
                    received.extend(decoded.events)
                    for rejected in decoded.rejected:
                        out(f"rejected: {rejected.error}")
    finally:
        await consumer.stop()
    out(f"read back {len(received)} events:")
    for event in sorted(received, key=lambda e: e.ts_ms):
        out("  " + _describe(event))
    return 0 if sorted(e.event_id for e in received) == sorted(e.event_id for e in events) else 1


def run_demo(out: Callable[[str], None] = print) -> int:
    """Run the demo on a private embedded broker; the process exit code."""
    port = free_port()
    with EmbeddedBroker(port=port) as broker:
        out(f"embedded broker listening on {broker.bootstrap_servers}")
        settings = load_settings(bootstrap_servers=broker.bootstrap_servers, broker_port=port)
        code = asyncio.run(_round_trip(settings, out))
    out("demo ok" if code == 0 else "demo FAILED: not every event came back")
    return code
