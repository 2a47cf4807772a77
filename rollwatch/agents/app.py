"""The faust app of ``rollwatch worker``: ingest, judge, checkpoint, tickets, /metrics, /status.

Built by :func:`build_app` (nothing happens at import). The engine is injected as an
:class:`~rollwatch.agents.ports.EngineFactory`; this module only moves bytes and
persists state.

Commit order
============
Outputs first, then the changelog, then offsets: see :mod:`rollwatch.agents.pipeline`,
which owns the order (and why a checkpoint covers several batches).

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
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.sensors.monitor import Monitor
from faust.types import TP

from rollwatch.agents import observe
from rollwatch.agents.changelog import ensure_changelog, guard_recovery
from rollwatch.agents.consumer import WorkerFaust
from rollwatch.agents.control import ControlFeed, EscalationNotices, ManualCommands
from rollwatch.agents.metrics import CONTENT_TYPE, Metrics
from rollwatch.agents.options import DEFAULT_GROUP, WorkerOptions
from rollwatch.agents.otlp import OtlpBridge
from rollwatch.agents.pipeline import EXIT_FAIL_STOP, Pipeline, fail_stop, wall_ms
from rollwatch.agents.ports import EngineFactory
from rollwatch.agents.records import SourceRecord
from rollwatch.agents.runtime import Runtime, Topics
from rollwatch.agents.tickets import TicketFeed
from rollwatch.notify import Notifier
from rollwatch.settings import Settings
from rollwatch.trust import keyring_from_settings

__all__ = [
    "DEFAULT_GROUP",
    "EXIT_FAIL_STOP",
    "Pipeline",
    "WorkerApp",
    "WorkerOptions",
    "build_app",
    "fail_stop",
    "rewind_uncommitted",
    "shorten_fetch_wait",
    "wall_ms",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerApp:
    """A built worker: the faust app to run and the state behind it (for tests and embedding)."""

    app: Any
    runtime: Runtime
    metrics: Metrics
    feed: TicketFeed
    options: WorkerOptions


class QuietMonitor(Monitor):
    """faust's monitor without its per-message bookkeeping.

    faust always installs ``app.monitor`` as a sensor and calls it for every message into
    and out of every stream (counters, time deques) to feed its web stats pages, which the
    worker turns off (``web_stats_enabled``); rollwatch counts per batch in its own
    Prometheus metrics. Without it a worker takes ~10-15% more single-event messages per
    second (``bench/bench_worker.py --only single``). Rebalance, commit and send hooks
    stay as they are.
    """

    def on_message_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_message_out(self, *args: Any, **kwargs: Any) -> None:
        return None


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
        "web_bind": options.web_bind or settings.web_host,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_tables_enabled": False,
        "web_router_enabled": False,
        "worker_redirect_stdouts": False,
        "monitor": QuietMonitor(),
    }
    if settings.sasl_username:
        config["broker_credentials"] = faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else "",
            mechanism="SCRAM-SHA-512",
        )
    return config


def shorten_fetch_wait(consumer: Any, seconds: float) -> bool:
    """Make the worker's fetches return after ``seconds`` at most when there is nothing to read.

    faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to
    change it. Kafka answers a waiting fetch as soon as data arrives; Tansu does not, so a
    message produced into an idle partition waited for much of the fetch in flight (median
    0.40 s, max 0.73 s measured at 1.5 s). The aiokafka fetcher reads the value for every
    request it builds, so setting it on the running fetcher is enough. An idle worker then
    sends ``1 / seconds`` fetches a second.
    Returns whether the fetcher was found (faust internals: ``Consumer._thread._consumer``).
    """
    fetcher = getattr(getattr(getattr(consumer, "_thread", None), "_consumer", None), "_fetcher", None)
    if fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
        log.warning("cannot shorten the fetch wait: faust's consumer has no aiokafka fetcher where expected")
        return False
    if fetcher._fetch_max_wait_ms != (wait_ms := max(1, int(seconds * 1000))):
        log.info("broker fetches wait at most %d ms (faust set %d)", wait_ms, fetcher._fetch_max_wait_ms)
        fetcher._fetch_max_wait_ms = wait_ms
    return True


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
    app = WorkerFaust(options.group, **_faust_config(settings, options, partitions))
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
        keyring=keyring_from_settings(settings),
    )
    feed = TicketFeed(settings, client_id=f"rollwatch-{runtime.worker}-tickets")
    pipeline = Pipeline(app, runtime, feed, options)
    # Record batches nobody can decode are stepped over and reported (rollwatch.agents.consumer, .fetch).
    app.on_undecodable = feed.on_undecodable = pipeline.on_undecodable

    def owned(tps: Any) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == topics.telemetry}

    def highwater(partition: int) -> int | None:
        try:
            value = app.consumer.highwater(TP(topics.telemetry, partition))
        except Exception:
            return None
        return int(value) if value is not None else None

    metrics.watch(lambda: observe.snapshot(runtime, highwater))

    async def ingest(stream: Any) -> None:
        await pipeline.wait_for_tickets()
        async for events in stream.noack_take(options.batch_max, within=options.batch_within):
            await pipeline.consume(stream, events)
        if not app.should_stop:
            fail_stop("the telemetry stream ended while the worker runs")

    app.agent(telemetry, name=f"{options.group}.ingest")(ingest)

    notifier = Notifier.from_settings(settings)
    escalations = EscalationNotices(runtime, notifier) if notifier is not None else None

    async def judge() -> None:
        try:
            await pipeline.tick()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            fail_stop("judge tick failed to deliver", exc)
        if escalations is not None:
            escalations.check()

    app.timer(options.judge_interval, name=f"{options.group}.judge")(judge)

    async def releases() -> None:
        await feed.run(pipeline.on_ticket)

    app.task(releases)

    if settings.topic_otlp:  # OTLP spans from the Collector, re-published as telemetry (rollwatch.agents.otlp)
        bridge = OtlpBridge(
            settings,
            options,
            tickets=runtime.tickets.get,
            registry=metrics.registry,
            on_undecodable=pipeline.on_undecodable,
        )

        async def otlp() -> None:
            await pipeline.wait_for_tickets()
            await bridge.run()

        app.task(otlp)
    # People's commands (issue 14): abort, pause, resume and approvals change what the judge may do.
    manual = ManualCommands(runtime, keyring_from_settings(settings), settings)
    control_feed = ControlFeed(
        settings, client_id=f"rollwatch-{runtime.worker}-control", on_undecodable=pipeline.on_undecodable
    )

    async def on_control(record: SourceRecord) -> None:
        async with pipeline.lock:
            manual.on_record(record)

    async def control() -> None:
        await control_feed.run(on_control)

    app.task(control)
    if notifier is not None:
        app.task(notifier.run)

    async def on_revoked(sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        await pipeline.on_revoked()

    async def on_assigned(sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        rewind_uncommitted(app.consumer, topics.telemetry, pipeline.on_offsets_lost)
        shorten_fetch_wait(app.consumer, options.fetch_max_wait)
        await pipeline.on_assigned(owned(args[0] if args else kwargs.get("assigned", ())))

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)

    async def on_recover() -> None:
        checkpoints = [(bytes(k), bytes(v)) for k, v in table.data.items() if v is not None]
        await pipeline.on_recovered(owned(app.consumer.assignment()), checkpoints)

    table.on_recover(on_recover)
    guard_recovery(
        app.tables.recovery,  # type: ignore[attr-defined]  # faust's TableManager, typed as its interface
        pipeline.on_changelog_reset,
        lambda: ensure_changelog(settings, topics.changelog, partitions),
    )

    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type=CONTENT_TYPE)

    async def status_view(web: Any, request: Any) -> Any:
        body = observe.status(runtime) | {
            "group": options.group,
            "ready": runtime.recovered and feed.ready.is_set() and not app.rebalancing,
            "changelog_resets": [asdict(reset) for reset in pipeline.changelog_resets],
            "undecodable": {
                "batches": pipeline.undecodable_total,
                "last": [asdict(batch) for batch in pipeline.undecodable],
            },
            "manual": {"counts": manual.counts, "last": manual.last},
        }
        return web.bytes(orjson.dumps(body), content_type="application/json")

    app.page("/metrics", name="rollwatch-metrics")(metrics_view)
    app.page("/status", name="rollwatch-status")(status_view)
    return WorkerApp(app, runtime, metrics, feed, options)
