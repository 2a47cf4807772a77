"""``rollwatch traffic``: seeded synthetic telemetry on the telemetry topic, paced or as a backfill.

The demo deployment's traffic generator. It publishes the same traffic the detection
tests and benchmarks use (:mod:`rollwatch.synth`), so a regression injected here is one
the gates are known to catch. With a ticket it first publishes that ticket on the
releases topic and takes the workflow and both routes from it, so the workers judge
the traffic against the gates an operator actually wrote.

Paced mode stamps events from now and sends each batch when its last event is due,
so event time tracks wall time and the workers' wall-clock judge sees a live canary.
Backfill mode (``pace=None``) stamps the run so it ends now and sends as fast as the
broker takes it.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from rollwatch.events import Event, encode_events
from rollwatch.kafka import ensure_topics, make_producer
from rollwatch.settings import Settings
from rollwatch.synth import Traffic, generate
from rollwatch.tickets.load import load_ticket_bytes
from rollwatch.tickets.model import Ticket
from rollwatch.trust import SigningKey, TrustError, signing_key_from_settings
from rollwatch.trust.releases import retire_record, ticket_record

__all__ = ["TrafficRun", "batches", "for_ticket", "publish_ticket", "release_value", "retire_ticket", "send_traffic"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TrafficRun:
    """What was sent."""

    events: int
    messages: int
    first_ts_ms: int | None
    last_ts_ms: int | None


def batches(items: Iterator[T], size: int) -> Iterator[list[T]]:
    """Consecutive items in lists of at most ``size`` (the generator is one workflow's, in time order)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def in_time_order(events: Iterator[Event], slack_ms: int = 1001) -> Iterator[Event]:
    """``generate``'s events by event time: a review (+500 ms) or complaint (+1 s) is yielded
    right after its call, and a paced batch ending with one would hold the calls before it."""
    heap: list[tuple[int, int, Event]] = []
    for n, event in enumerate(events):
        heapq.heappush(heap, (event.ts_ms, n, event))
        while heap[0][0] <= event.ts_ms - slack_ms:
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]


def for_ticket(traffic: Traffic, ticket: Ticket) -> Traffic:
    """The same traffic on the ticket's workflow and routes."""
    return replace(
        traffic, workflow=ticket.workflow, control_route=ticket.control.route, candidate_route=ticket.candidate.route
    )


def _release_key(settings: Settings) -> SigningKey:
    """The release manager's key; consumers refuse unsigned tickets, so a missing key fails here."""
    key = signing_key_from_settings(settings)
    if key is None:
        raise TrustError(
            "publishing a ticket needs a release manager's key: set ROLLWATCH_SIGNING_KEY "
            "(and ROLLWATCH_SIGNING_KEY_ID; `rollwatch keys generate` makes one)"
        )
    return key


def release_value(settings: Settings, ticket: Ticket, raw: bytes) -> bytes:
    """The releases-topic record for ``raw`` (the ticket file as written), signed with this process's key."""
    return ticket_record(raw, ticket, _release_key(settings))


async def publish_ticket(settings: Settings, ticket: Ticket, raw: bytes) -> tuple[int, int]:
    """Put ``raw`` (the ticket file as written) in force: the releases topic, keyed by workflow.

    The topic is compacted, so the newest ticket per workflow is the one workers, flag
    stores and gateways read at start. Returns the (partition, offset) it was written at.
    """
    return await _put_release(settings, ticket.workflow, release_value(settings, ticket, raw))


async def retire_ticket(settings: Settings, ticket: Ticket) -> tuple[int, int]:
    """Take ``ticket`` out of force with a signed retirement; the (partition, offset) written."""
    value = retire_record(ticket.workflow, ticket.ticket, ticket.revision, _release_key(settings), datetime.now(UTC))
    return await _put_release(settings, ticket.workflow, value)


async def _put_release(settings: Settings, workflow: str, value: bytes) -> tuple[int, int]:
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        meta = await producer.send_and_wait(settings.topic_releases, value, key=workflow.encode())
    finally:
        await producer.stop()
    return int(meta.partition), int(meta.offset)


async def send_traffic(
    settings: Settings,
    traffic: Traffic,
    *,
    batch_size: int = 100,
    pace: float | None = 1.0,
    ticket_raw: bytes | None = None,
    progress: Callable[[TrafficRun], None] | None = None,
    progress_every: int = 50,
    stop: asyncio.Event | None = None,
) -> TrafficRun:
    """Publish ``traffic`` in JSON-array batches keyed by workflow.

    ``pace`` is how many seconds of event time pass per wall second (1.0: real time);
    ``None`` sends as fast as possible. ``traffic.start_ms`` is replaced by now (paced)
    or by now minus the duration (backfill).
    """
    release = release_value(settings, load_ticket_bytes(ticket_raw, "ticket"), ticket_raw) if ticket_raw else None
    await ensure_topics(settings)
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    # Stamp event time only once the producer is up: stamping before the (slow) start-up
    # would date every event earlier than it is sent and inflate measured latencies.
    now_ms = int(time.time() * 1000)
    start_ms = now_ms if pace is not None else now_ms - traffic.duration_ms
    traffic = replace(traffic, start_ms=start_ms)
    events = messages = 0
    first: int | None = None
    last: int | None = None
    key = traffic.workflow.encode()
    started = time.monotonic()
    try:
        if release is not None:
            await producer.send_and_wait(settings.topic_releases, release, key=key)
        for batch in batches(in_time_order(generate(traffic)), batch_size):
            if stop is not None and stop.is_set():
                break
            if pace is not None:
                due = started + (batch[-1].ts_ms - start_ms) / 1000 / pace
                delay = due - time.monotonic()
                if delay > 0:
                    if stop is None:
                        await asyncio.sleep(delay)
                    else:
                        try:
                            await asyncio.wait_for(stop.wait(), delay)
                            break
                        except TimeoutError:
                            pass
            await producer.send(settings.topic_telemetry, encode_events(batch), key=key)
            events += len(batch)
            messages += 1
            first = batch[0].ts_ms if first is None else first
            last = batch[-1].ts_ms
            if progress is not None and messages % progress_every == 0:
                progress(TrafficRun(events, messages, first, last))
        await producer.flush()
    finally:
        await producer.stop()
    return TrafficRun(events, messages, first, last)
