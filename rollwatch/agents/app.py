"""The faust app of ``rollwatch worker``: ingest, judge, checkpoint, tickets, /metrics, /status.

Built by :func:`build_app` (nothing happens at import). The engine is injected as an
:class:`~rollwatch.agents.ports.EngineFactory`; this module only moves bytes and
persists state.

Commit order
============
For every telemetry batch the worker relies on this order, and enforces it itself rather
than trusting faust's flush (``ProducerBuffer.flush`` gives up after 0.1 s without
progress, so ``consumer.commit()`` can run with records still buffered):

1. **outputs sent** - dead letters and rollback commands are produced, and the commands
   are *awaited* (broker ack, ``acks=all``) before anything else: engine state records
   that a command was issued, so state must never be durable without the command;
2. **changelog written** - one state-table record per workflow the batch touched
   (``engine.to_bytes()`` plus the per-partition offsets it holds), sent straight to the
   aiokafka producer with an explicit partition and awaited together with the dead
   letters (the last record of each changelog partition alone, see
   :meth:`Pipeline._write_checkpoints`);
3. **producer flushed** - implied by 1 and 2: every future is resolved before step 4;
4. **offsets committed** - the batch is consumed with ``stream.noack_take`` and each
   event is acked only after 1-3 succeeded. faust commits acked offsets only (its
   committer, ``Consumer._commit_offsets``, also flushes the producer first). If the
   task is cancelled or anything fails mid-batch, nothing is acked; a delivery failure
   stops the process (:func:`fail_stop`) so faust's shutdown cannot commit past it.

A crash between 2 and 4 leaves state ahead of the committed offsets. The redelivered
messages are skipped per workflow using the offsets stored in the checkpoint (see
:mod:`rollwatch.agents.checkpoint`), so a count never goes up twice, and a command is
re-evaluated from identical state, so the engine's deterministic ``command_id`` is the
same: downstream may see the same id again after a crash, never a new one. Within one
process a command id is published at most once (a bounded set).

The judge timer (every ``judge_interval`` seconds, wall clock) evaluates every workflow
so that time-based gates fire when traffic stops; it follows the same order (command
delivered, then a checkpoint of the workflows that emitted). One asyncio lock serialises
batches, timer ticks, ticket installs and rebalance callbacks, so two snapshots of one
engine can never reach the changelog out of order and no write can follow the loss of
a partition.

State and rebalances
====================
Engines live in a dict. The faust Table (memory store, raw bytes, changelog partition
= telemetry partition, standby replicas) is used for its changelog, recovery and standby
machinery only: the worker writes changelog records itself with the telemetry partition
the workflow's messages come from (not faust's context-variable ``current_event``).
At each assignment, engines of partitions no longer owned are dropped; when recovery
completes, engines of owned partitions that are not in memory are restored with
``factory.restore``. A partition without a committed offset is rewound to its earliest
offset after a rebalance (:func:`rewind_uncommitted`; faust would otherwise skip what it
drained during recovery); if engines kept in memory had applied that partition, its log
was recreated and they forget the old offsets (:meth:`Runtime.on_offsets_lost`).

faust on Tansu
==============
* ``processing_guarantee="at_least_once"``: exactly-once would turn on the idempotent,
  transactional producer, and Tansu has no InitProducerId.
* Raw key/value serializers for the app, the topic and the table (``key_type=bytes``):
  a key faust cannot decode makes it end the agent's stream silently, after which the
  worker would sit idle; :func:`build_app` also fail-stops if the stream ever ends.
* Tansu reports a partition's end offset as the base of its last record batch + 1;
  faust's recovery trusts it, hence the single-record tail batch per changelog partition.
* Short session/rebalance timeouts in tests (Tansu holds a new group's first JoinGroup
  for the rebalance timeout) and one web port per worker (faust always binds it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import faust
import orjson
from faust.types import TP

from rollwatch.agents.metrics import CONTENT_TYPE, Metrics
from rollwatch.agents.ports import EngineFactory
from rollwatch.agents.records import Outgoing, SourceRecord
from rollwatch.agents.runtime import Runtime, Topics
from rollwatch.agents.tickets import TicketFeed
from rollwatch.settings import Settings

__all__ = [
    "DEFAULT_GROUP",
    "Pipeline",
    "WorkerApp",
    "WorkerOptions",
    "build_app",
    "fail_stop",
    "rewind_uncommitted",
    "wall_ms",
]

log = logging.getLogger(__name__)

DEFAULT_GROUP: Final = "rollwatch-worker"
EXIT_FAIL_STOP: Final = 70


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def fail_stop(reason: str, exc: BaseException | None = None) -> None:
    """Exit at once, committing nothing more: at-least-once survives a crash, not a bad commit."""
    log.critical("fail-stop: %s", reason, exc_info=exc)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(EXIT_FAIL_STOP)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How one worker process runs; the broker and topics come from :class:`Settings`."""

    group: str = DEFAULT_GROUP
    """Consumer group and faust app id: workers with the same group split the partitions."""
    name: str | None = None
    """This worker's name in logs, /status and the Kafka client id (default: host-pid)."""
    web_port: int | None = None
    """HTTP port for /metrics and /status (default: ``settings.web_port``)."""
    web_bind: str = "0.0.0.0"
    data_dir: Path | None = None
    """faust's data directory (memory store, but faust still creates it); default: a temp dir."""
    partitions: int | None = None
    """Telemetry partitions (default: ``settings.telemetry_partitions``); the changelog gets as many."""
    batch_max: int = 1000
    """Most messages per batch; bounds the raw bytes a batch holds (each message may carry 50 000 events)."""
    batch_within: float = 0.2
    """Seconds to wait for a batch to fill; each batch costs one checkpoint per workflow it touched."""
    judge_interval: float = 1.0
    commit_interval: float = 1.0
    session_timeout: float = 10.0
    heartbeat_interval: float = 2.0
    rebalance_timeout: float = 15.0
    standby_replicas: int = 1
    tickets_wait: float = 15.0
    """How long the first batch waits for the releases backlog before going on without it."""
    max_command_ids: int = 100_000

    @property
    def worker_name(self) -> str:
        return self.name or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class WorkerApp:
    """A built worker: the faust app to run and the state behind it (for tests and embedding)."""

    app: Any
    runtime: Runtime
    metrics: Metrics
    feed: TicketFeed
    options: WorkerOptions


def _faust_config(settings: Settings, options: WorkerOptions, partitions: int) -> dict[str, Any]:
    name = options.worker_name
    config: dict[str, Any] = {
        "broker": [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",") if server.strip()],
        "broker_client_id": f"rollwatch-{name}",
        # Tansu has no InitProducerId: exactly_once would turn on the idempotent producer.
        "processing_guarantee": "at_least_once",
        "store": "memory://",
        # Everything is raw bytes: a key or value faust cannot decode ends the agent's stream
        # silently (KeyDecodeError in the passive drainer), so faust must never try.
        "key_serializer": "raw",
        "value_serializer": "raw",
        "autodiscover": False,
        "datadir": str(options.data_dir or Path(tempfile.gettempdir()) / f"rollwatch-{options.group}-{name}"),
        "topic_partitions": partitions,
        "topic_disable_leader": True,
        "table_standby_replicas": options.standby_replicas,
        "broker_session_timeout": options.session_timeout,
        "broker_heartbeat_interval": options.heartbeat_interval,
        "broker_rebalance_timeout": options.rebalance_timeout,
        "broker_commit_interval": options.commit_interval,
        "consumer_auto_offset_reset": "earliest",
        "consumer_max_fetch_size": 8 * 1024 * 1024,
        "stream_buffer_maxsize": 16_384,
        "stream_wait_empty": True,
        "producer_acks": -1,
        "producer_linger": 0.002,
        "web_enabled": True,
        "web_port": options.web_port or settings.web_port,
        "web_bind": options.web_bind,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_tables_enabled": False,
        "web_router_enabled": False,
        "worker_redirect_stdouts": False,
    }
    if settings.sasl_username:
        config["broker_credentials"] = faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else "",
            mechanism="SCRAM-SHA-512",
        )
    return config


class Pipeline:
    """The ordered I/O around :class:`Runtime`: what gets produced, awaited and acked when."""

    def __init__(self, app: Any, runtime: Runtime, feed: TicketFeed, options: WorkerOptions) -> None:
        self.app = app
        self.runtime = runtime
        self.feed = feed
        self.options = options
        self.lock = asyncio.Lock()

    async def _send(self, out: Outgoing) -> Any:
        """Hand a record to aiokafka (not faust's send_soon buffer); the future resolves on broker ack."""
        return await self.app.producer.send(out.topic, out.key, out.value, out.partition, None, None)

    async def _deliver(self, outgoing: Sequence[Outgoing], pending: Sequence[Any] = ()) -> None:
        futures = [*pending]
        for out in outgoing:
            futures.append(await self._send(out))
        if futures:
            await asyncio.gather(*futures)

    async def _write_checkpoints(self, records: Sequence[Outgoing], pending: Sequence[Any] = ()) -> None:
        """Deliver changelog records so that the last one of each partition is a batch of its own.

        Tansu answers ListOffsets(latest) with the base offset of the partition's last record
        *batch* plus one, not the offset after its last record; faust's table recovery reads up
        to that "highwater" and silently drops the rest of a multi-record batch. Writing each
        partition's final record alone (after the others are acked) makes the reported end true.
        """
        last = {out.partition: i for i, out in enumerate(records)}
        tails = set(last.values())
        head = [out for i, out in enumerate(records) if i not in tails]
        if head:
            await self._deliver(head, pending)
            pending = ()
        await self._deliver([records[i] for i in sorted(tails)], pending)

    async def wait_for_tickets(self) -> None:
        try:
            await asyncio.wait_for(self.feed.ready.wait(), self.options.tickets_wait)
        except TimeoutError:
            log.warning("releases not caught up after %.0fs; processing telemetry anyway", self.options.tickets_wait)

    async def consume(self, stream: Any, events: Sequence[Any]) -> None:
        """Process one batch, then ack its events; nothing is acked unless everything was delivered."""
        try:
            await self.process(events)
        except asyncio.CancelledError:
            raise  # not acked: the batch is redelivered
        except BaseException as exc:
            fail_stop(f"batch of {len(events)} messages could not be processed and delivered", exc)
        for event in events:
            await stream.ack(event)

    async def process(self, events: Sequence[Any]) -> None:
        """One batch, in commit order (module docstring): outputs, changelog, then the caller acks."""
        records = [
            SourceRecord(m.topic, m.partition, m.offset, m.key, m.value) for m in (event.message for event in events)
        ]
        runtime = self.runtime
        async with self.lock:
            fold = runtime.fold(records)
            pending = [await self._send(out) for out in fold.deadletters]
            judgement = runtime.judge(fold.touched, wall_ms())
            if judgement.commands:
                await self._deliver(judgement.commands)
            await self._write_checkpoints(runtime.checkpoint(fold.touched), pending)

    async def tick(self) -> None:
        """Judge every workflow on wall-clock time, so time-based gates fire without traffic."""
        async with self.lock:
            if not self.runtime.recovered or self.app.rebalancing:
                return
            judgement = self.runtime.judge(list(self.runtime.slots.values()), wall_ms())
            self.runtime.totals["ticks"] += 1
            if judgement.commands:
                await self._deliver(judgement.commands)
                await self._write_checkpoints(self.runtime.checkpoint(judgement.emitted))

    async def on_ticket(self, record: SourceRecord) -> None:
        async with self.lock:
            deadletters = self.runtime.on_ticket(record)
        if deadletters:
            try:
                await self._deliver(deadletters)
            except Exception:  # the ticket's own offset is not committed anywhere: nothing to protect
                log.exception("cannot dead-letter a bad ticket from %s@%d", record.topic, record.offset)

    async def on_revoked(self) -> None:
        async with self.lock:  # waits out a timer tick in flight, so no write follows the loss of a partition
            self.runtime.recovered = False

    async def on_offsets_lost(self, partitions: set[int]) -> None:
        async with self.lock:
            self.runtime.on_offsets_lost(partitions)

    async def on_assigned(self, partitions: set[int]) -> None:
        async with self.lock:
            self.runtime.on_assigned(partitions)

    async def on_recovered(self, partitions: set[int], checkpoints: list[tuple[bytes, bytes]]) -> None:
        async with self.lock:
            if frozenset(partitions) != self.runtime.assigned:
                self.runtime.on_assigned(partitions)
            self.runtime.on_recovered(checkpoints)


def rewind_uncommitted(consumer: Any, topic: str, on_rewind: Callable[[set[int]], Awaitable[None]]) -> None:
    """Make faust's "seek to committed" rewind partitions that have no committed offset yet.

    During a rebalance faust's fetcher can drain records of a stream partition before the
    partition is paused; it then rewinds with ``seek_to_committed``. aiokafka leaves a
    partition without a committed offset (a group that never committed, or committed 0)
    where it is, so those records are never delivered, and once later offsets are acked
    they are committed past for good. This wraps the consumer's ``seek_to_committed`` so
    that such partitions of ``topic`` go back to their earliest offset, which is what
    ``consumer_auto_offset_reset="earliest"`` means. Replays are harmless (checkpoints
    hold per-partition offsets). ``on_rewind`` hears which partitions were rewound.
    """
    if getattr(consumer, "_rollwatch_rewind", False):
        return
    original = consumer.seek_to_committed

    async def seek_to_committed() -> Any:
        committed = await original()
        missing = [tp for tp, offset in committed.items() if tp.topic == topic and not offset]
        if missing:
            await on_rewind({tp.partition for tp in missing})
            earliest = await consumer.earliest_offsets(*missing)
            for tp in missing:
                if earliest.get(tp) is not None:
                    await consumer.seek(tp, earliest[tp])
            log.info("rewound %d uncommitted partitions of %s to their earliest offset", len(missing), topic)
        return committed

    consumer.seek_to_committed = seek_to_committed
    consumer._rollwatch_rewind = True


def build_app(settings: Settings, engine_factory: EngineFactory, options: WorkerOptions | None = None) -> WorkerApp:
    """A faust app wired to ``engine_factory``; run it with ``faust.Worker(result.app).execute_from_commandline()``."""
    options = options or WorkerOptions()
    partitions = options.partitions or settings.telemetry_partitions
    app = faust.App(options.group, **_faust_config(settings, options, partitions))
    # Not one shared Schema: faust's Table overwrites the serializers of the schema it is given
    # (with json unless key_type/value_type are bytes), which would then break the topic too.
    telemetry = app.topic(
        settings.topic_telemetry, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    table = app.Table(
        "state",
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        help="Engine checkpoint per workflow",
        # One record per touched workflow per batch: without short segments Kafka would not
        # compact the active segment for days and every recovery would read all of it.
        extra_topic_configs={"segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1"},
    )
    topics = Topics(
        telemetry=settings.topic_telemetry,
        control=settings.topic_control,
        deadletter=settings.topic_deadletter,
        releases=settings.topic_releases,
        changelog=table.changelog_topic.get_topic_name(),
    )
    metrics = Metrics()
    runtime = Runtime(
        engine_factory,
        topics=topics,
        partitions=partitions,
        metrics=metrics,
        worker=options.worker_name,
        max_command_ids=options.max_command_ids,
    )
    feed = TicketFeed(settings, client_id=f"rollwatch-{runtime.worker}-tickets")
    pipeline = Pipeline(app, runtime, feed, options)

    def owned(tps: Any) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == topics.telemetry}

    def highwater(partition: int) -> int | None:
        try:
            value = app.consumer.highwater(TP(topics.telemetry, partition))
        except Exception:
            return None
        return int(value) if value is not None else None

    metrics.watch(lambda: runtime.snapshot(highwater))

    async def ingest(stream: Any) -> None:
        await pipeline.wait_for_tickets()
        async for events in stream.noack_take(options.batch_max, within=options.batch_within):
            await pipeline.consume(stream, events)
        if not app.should_stop:
            fail_stop("the telemetry stream ended while the worker runs")

    app.agent(telemetry, name=f"{options.group}.ingest")(ingest)

    async def judge() -> None:
        try:
            await pipeline.tick()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            fail_stop("judge tick failed to deliver", exc)

    app.timer(options.judge_interval, name=f"{options.group}.judge")(judge)

    async def releases() -> None:
        await feed.run(pipeline.on_ticket)

    app.task(releases)

    async def on_revoked(sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        await pipeline.on_revoked()

    async def on_assigned(sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        rewind_uncommitted(app.consumer, topics.telemetry, pipeline.on_offsets_lost)
        await pipeline.on_assigned(owned(args[0] if args else kwargs.get("assigned", ())))

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)

    async def on_recover() -> None:
        checkpoints = [(bytes(k), bytes(v)) for k, v in table.data.items() if v is not None]
        await pipeline.on_recovered(owned(app.consumer.assignment()), checkpoints)

    table.on_recover(on_recover)

    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type=CONTENT_TYPE)

    async def status_view(web: Any, request: Any) -> Any:
        body = runtime.status() | {
            "group": options.group,
            "ready": runtime.recovered and feed.ready.is_set() and not app.rebalancing,
        }
        return web.bytes(orjson.dumps(body), content_type="application/json")

    app.page("/metrics", name="rollwatch-metrics")(metrics_view)
    app.page("/status", name="rollwatch-status")(status_view)
    return WorkerApp(app, runtime, metrics, feed, options)
