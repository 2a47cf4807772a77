"""The OTLP bridge: span batches from the Collector's Kafka exporter in, telemetry keyed by workflow out.

Why a bridge that re-publishes, not a second input of the engines: the Collector's Kafka
exporter does not key messages by workflow (no key, or the trace id), so the spans of one
workflow land on any partition of the OTLP topic, while the worker that judges a workflow
must see both of its arms in one partition of the telemetry topic. Converting and
producing to the telemetry topic with the workflow as key puts every call where the
telemetry path would have put it, and from there on both ways in are the same path:
validation, dedup, windows, gates, commands, checkpoints.

Why a plain aiokafka consumer group (``<group>.otlp``) and not a faust agent: the bridge
holds no state, so the worker's checkpoint and rebalance machinery has nothing to do for
it; produce, await the broker's acks, then commit is the whole at-least-once contract.
A batch delivered twice yields the same ``event_id``\\ s (``<trace id>-<span id>``), which
the engines drop as duplicates.

The conversion itself is :mod:`rollwatch.otlp` (pure); this module only moves bytes and
keeps the parsed route book of each workflow's ticket in force.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry, Counter

from rollwatch.agents.deadletter import dead_letter
from rollwatch.agents.fetch import UndecodableBatch, fetch_skipping
from rollwatch.agents.options import WorkerOptions
from rollwatch.agents.records import Outgoing, SourceRecord
from rollwatch.errors import RollwatchError
from rollwatch.events import CallEvent, encode_events
from rollwatch.kafka import client_options, make_producer
from rollwatch.otlp import InvalidBatchError, RouteBook, SpanNames, convert, decode_traces
from rollwatch.settings import Settings
from rollwatch.tickets.load import load_ticket_bytes

__all__ = ["CHUNK", "OtlpBridge", "span_names"]

log = logging.getLogger(__name__)

CHUNK: Final = 1000
"""Most calls per telemetry message: ~0.4 MB, under the broker's default 1 MB message limit."""


def span_names(settings: Settings) -> SpanNames:
    """The attribute names the settings map (their defaults are :class:`SpanNames`')."""
    return SpanNames(
        workflow=settings.otlp_workflow_attributes,
        route=settings.otlp_route_attributes,
        arm=settings.otlp_arm_attributes,
        segment=settings.otlp_segment_attributes,
        prompt_version=settings.otlp_prompt_version_attributes,
        operations=settings.otlp_operations,
    )


class OtlpBridge:
    """Reads ``settings.topic_otlp``, writes calls to the telemetry topic and rejects to the dead letters."""

    def __init__(
        self,
        settings: Settings,
        options: WorkerOptions,
        *,
        tickets: Callable[[str], bytes | None],
        registry: CollectorRegistry | None = None,
        on_undecodable: Callable[[UndecodableBatch], None] | None = None,
    ) -> None:
        if not settings.topic_otlp:
            raise ValueError("the OTLP bridge needs settings.topic_otlp")
        self._settings = settings
        self._options = options
        self._topic = settings.topic_otlp
        self._names = span_names(settings)
        self._tickets = tickets
        self._books: dict[str, tuple[bytes, RouteBook | None]] = {}
        self._on_undecodable = on_undecodable
        r = registry or CollectorRegistry()
        self.spans = Counter("rollwatch_otlp_spans", "OTLP spans read, by what became of them", ["result"], registry=r)
        self.batches = Counter("rollwatch_otlp_batches", "OTLP messages read", ["result"], registry=r)
        self.unpriced = Counter(
            "rollwatch_otlp_unpriced_calls", "Calls with no cost attribute and no ticket pricing (cost 0)", registry=r
        )

    def book(self, workflow: str) -> RouteBook | None:
        """The routes of the workflow's ticket in force, parsed once per ticket revision."""
        ticket = self._tickets(workflow)
        if ticket is None:
            return None
        cached = self._books.get(workflow)
        if cached is not None and cached[0] is ticket:
            return cached[1]
        try:
            book: RouteBook | None = RouteBook.of(load_ticket_bytes(ticket, f"ticket of {workflow}"))
        except RollwatchError as exc:
            log.warning("ticket of workflow %r unreadable for OTLP routing: %s", workflow, exc)
            book = None
        self._books[workflow] = (ticket, book)
        return book

    def translate(self, record: SourceRecord) -> list[Outgoing]:
        """Telemetry messages (one per workflow and chunk) and dead letters for one OTLP message.

        Never raises on content: a bug met by one message costs that message (dead-lettered
        with the error), not a bridge that would re-read it forever.
        """
        try:
            return self._translate(record)
        except Exception as exc:
            log.exception("unexpected error converting %s[%d]@%d", record.topic, record.partition, record.offset)
            return self._reject(record, f"internal error while converting: {exc!r}", "")

    def _reject(self, record: SourceRecord, reason: str, field: str) -> list[Outgoing]:
        self.batches.labels("rejected").inc()
        topic = self._settings.topic_deadletter
        return [dead_letter(topic, record, reason=reason, field=field, index=None, raw=record.value)]

    def _translate(self, record: SourceRecord) -> list[Outgoing]:
        settings = self._settings
        try:
            traces = decode_traces(record.value or b"", genai_only=True)
        except InvalidBatchError as exc:
            return self._reject(record, str(exc), exc.field)
        self.batches.labels("ok").inc()
        result = convert(traces, self._names, self.book)
        self.spans.labels("call").inc(len(result.calls))
        self.spans.labels("skipped").inc(result.skipped)
        self.spans.labels("rejected").inc(len(result.rejected))
        self.unpriced.inc(result.unpriced)
        out: list[Outgoing] = []
        by_workflow: dict[str, list[CallEvent]] = {}
        for call in result.calls:
            by_workflow.setdefault(call.workflow, []).append(call)
        for workflow, calls in by_workflow.items():
            key = workflow.encode()
            for start in range(0, len(calls), CHUNK):
                out.append(Outgoing(settings.topic_telemetry, key, encode_events(calls[start : start + CHUNK])))
        for rejected in result.rejected:
            source = replace(record, key=rejected.workflow.encode()) if rejected.workflow else record
            error = rejected.error
            out.append(
                dead_letter(
                    settings.topic_deadletter,
                    source,
                    reason=str(error),
                    field=error.field,
                    index=rejected.index,
                    raw=rejected.raw,
                )
            )
        return out

    def _undecodable(self, batch: UndecodableBatch) -> None:
        self.batches.labels("undecodable").inc()
        if self._on_undecodable is not None:
            self._on_undecodable(batch)
        else:
            log.warning("stepped over an undecodable record batch: %s", batch)

    async def run(self) -> None:
        """Consume until cancelled, reconnecting with back-off: a broken bridge must not stop the worker."""
        delay = 0.5
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("OTLP bridge on %s failed; retrying in %.1fs", self._topic, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _consume(self) -> None:
        options = self._options
        consumer = AIOKafkaConsumer(
            self._topic,
            **client_options(self._settings),
            group_id=f"{options.group}.otlp",
            client_id=f"rollwatch-{options.worker_name}-otlp",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(options.session_timeout * 1000),
            heartbeat_interval_ms=int(options.heartbeat_interval * 1000),
            rebalance_timeout_ms=int(options.rebalance_timeout * 1000),
            max_poll_records=options.batch_max,
        )
        producer = make_producer(self._settings, client_id=f"rollwatch-{options.worker_name}-otlp")
        await producer.start()
        try:
            await consumer.start()
            try:
                log.info("OTLP bridge reading %s", self._topic)
                while True:
                    # A batch nobody can decode is stepped over (rollwatch.agents.fetch), not retried forever.
                    batches = await fetch_skipping(
                        consumer,
                        lambda: consumer.getmany(timeout_ms=int(options.fetch_max_wait * 1000) or 50),
                        self._undecodable,
                    )
                    if batches:
                        await self._forward(consumer, producer, batches)
            finally:
                await consumer.stop()
        finally:
            await producer.stop()

    async def _forward(
        self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, batches: dict[TopicPartition, list[Any]]
    ) -> None:
        """Produce everything a fetch yields, wait for the broker's acks, then commit past it."""
        futures = []
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            for r in records:
                record = SourceRecord(tp.topic, tp.partition, r.offset, r.key, r.value, r.timestamp)
                for out in self.translate(record):
                    futures.append(await producer.send(out.topic, out.value, key=out.key))
                offsets[tp] = r.offset + 1
        if futures:
            await asyncio.gather(*futures)
        await consumer.commit(offsets)
