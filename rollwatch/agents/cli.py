"""``rollwatch worker``: run the streaming worker (mount :func:`worker` on the main typer app).

::

    from rollwatch.agents.cli import worker
    app.command("worker")(worker)

``python -m rollwatch.agents`` runs the same command on its own (the tests start workers
that way, so SIGKILL hits a real process). The engine is named by ``--engine
module:attribute`` (an :class:`~rollwatch.agents.ports.EngineFactory` or a callable
returning one); :data:`DEFAULT_ENGINE` is used when the option is absent.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer

from rollwatch.agents.app import DEFAULT_GROUP, WorkerOptions, build_app
from rollwatch.agents.errors import EngineSpecError
from rollwatch.agents.ports import EngineFactory
from rollwatch.broker import port_is_free
from rollwatch.console import run_app
from rollwatch.errors import PortInUseError
from rollwatch.kafka import client_options, ensure_topics
from rollwatch.settings import Settings, load_settings

__all__ = [
    "DEFAULT_ENGINE",
    "load_engine_factory",
    "main",
    "LIBRARY_LOGGERS",
    "prepare_topics",
    "quiet_libraries",
    "run_worker",
    "worker",
    "worker_app",
]

log = logging.getLogger(__name__)

DEFAULT_ENGINE: str | None = "rollwatch.agents.engine_factory:production_factory"
"""The production engine factory: gates, judge and signing with ``ROLLWATCH_SIGNING_KEY``."""


def load_engine_factory(spec: str) -> EngineFactory:
    """Import ``module:attribute``; call it if it is a class or factory function rather than a factory."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise EngineSpecError(f"--engine {spec!r}: expected module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineSpecError(f"--engine {spec!r}: cannot import {module_name}: {exc}") from None
    target: Any = getattr(module, attribute, None)
    if target is None:
        raise EngineSpecError(f"--engine {spec!r}: {module_name} has no attribute {attribute!r}")
    if isinstance(target, type) or not (hasattr(target, "new") and hasattr(target, "restore")):
        if not callable(target):
            raise EngineSpecError(f"--engine {spec!r}: neither an engine factory nor callable")
        target = target()
    if not (callable(getattr(target, "new", None)) and callable(getattr(target, "restore", None))):
        raise EngineSpecError(f"--engine {spec!r}: {type(target).__name__} has no new() and restore()")
    factory: EngineFactory = target
    return factory


async def prepare_topics(settings: Settings) -> int:
    """Create missing topics; the telemetry topic's real partition count (the changelog must match it)."""
    await ensure_topics(settings)
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        await consumer.topics()
        found = consumer.partitions_for_topic(settings.topic_telemetry)
    finally:
        await consumer.stop()
    if not found:
        return settings.telemetry_partitions
    if len(found) != settings.telemetry_partitions:
        log.warning(
            "%s has %d partitions, settings say %d: using %d",
            settings.topic_telemetry,
            len(found),
            settings.telemetry_partitions,
            len(found),
        )
    return len(found)


def run_worker(
    settings: Settings, engine_factory: EngineFactory, options: WorkerOptions, loglevel: str = "info"
) -> None:
    """Run a worker in this process until SIGTERM/SIGINT; does not return normally (SystemExit)."""
    import faust

    # ~10 objects per event: with the default threshold (700) the collector runs every ~70
    # events and rescans everything alive. Freeze what start-up built and collect less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    web_port = options.web_port or settings.web_port
    web_bind = options.web_bind or settings.web_host
    if not port_is_free(web_bind, web_port):
        raise PortInUseError(
            f"web port {web_port} on {web_bind} is already in use (another worker?): "
            "choose another with --web-port or ROLLWATCH_WEB_PORT"
        )
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    partitions = loop.run_until_complete(prepare_topics(settings))
    if options.partitions is None:
        options = WorkerOptions(**{**_fields(options), "partitions": partitions})
    built = build_app(settings, engine_factory, options)
    quiet_libraries(loglevel)
    faust.Worker(built.app, loop=loop, loglevel=loglevel, redirect_stdouts=False, quiet=True).execute_from_commandline()


LIBRARY_LOGGERS = ("faust", "mode", "aiokafka", "aiohttp")
"""Loggers whose INFO lines (service start/stop, subscription and assignment tables) an operator does not read."""


def quiet_libraries(loglevel: str) -> None:
    """Below ``debug``, the libraries log warnings and errors only; rollwatch's own lines
    (one per decision, per batch with rejected events, per recovery) keep ``loglevel``."""
    if loglevel.lower() == "debug":
        return
    threshold = max(logging.WARNING, logging.getLevelName(loglevel.upper()) if loglevel.isalpha() else 0)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(threshold)


def _fields(options: WorkerOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in WorkerOptions.__dataclass_fields__}


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (else $ROLLWATCH_CONFIG).")
]


def worker(
    config: ConfigOption = None,
    web_port: Annotated[int | None, typer.Option("--web-port", help="Port of /metrics and /status.")] = None,
    web_host: Annotated[
        str | None, typer.Option("--web-host", help="Address of /metrics and /status (default 127.0.0.1).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", "--worker-id", "--workers-id", help="Worker name (logs, /status); default host-pid."),
    ] = None,
    group: Annotated[
        str, typer.Option("--group", help="Consumer group: workers of one group split the partitions.")
    ] = DEFAULT_GROUP,
    engine: Annotated[
        str | None, typer.Option("--engine", help="module:attribute of the EngineFactory to use.")
    ] = DEFAULT_ENGINE,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="faust data directory.")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")] = "info",
    session_timeout: Annotated[float, typer.Option(help="Consumer-group session timeout, seconds.")] = 10.0,
    rebalance_timeout: Annotated[float, typer.Option(help="Rebalance timeout, seconds.")] = 15.0,
    commit_interval: Annotated[float, typer.Option(help="Offset commit interval, seconds.")] = 1.0,
    judge_interval: Annotated[float, typer.Option(help="Wall-clock judge timer, seconds.")] = 1.0,
    tick_budget: Annotated[
        float, typer.Option(help="Most seconds one timer tick spends judging; the next tick goes on.")
    ] = 0.1,
    batch_max: Annotated[int, typer.Option(help="Most messages per batch.")] = 1000,
    batch_within: Annotated[float, typer.Option(help="Seconds to wait for a batch to fill.")] = 0.05,
    checkpoint_interval: Annotated[
        float, typer.Option(help="Most seconds between state checkpoints (0: after every batch).")
    ] = 0.5,
    fetch_max_wait: Annotated[float, typer.Option(help="Longest a broker fetch waits for data, seconds.")] = 0.05,
) -> None:
    """Run the streaming worker: telemetry in, rollback commands out, state in a changelog."""
    if engine is None:
        raise EngineSpecError("no engine: pass --engine module:attribute")
    settings = load_settings(config)
    if config is not None:
        # The engine factory reads its own settings (the signing key): let it see the same file.
        os.environ["ROLLWATCH_CONFIG"] = str(config)
    factory = load_engine_factory(engine)
    options = WorkerOptions(
        group=group,
        name=name,
        web_port=web_port,
        web_bind=web_host,
        data_dir=data_dir,
        session_timeout=session_timeout,
        heartbeat_interval=max(0.5, session_timeout / 5),
        rebalance_timeout=rebalance_timeout,
        commit_interval=commit_interval,
        judge_interval=judge_interval,
        tick_budget=tick_budget,
        batch_max=batch_max,
        batch_within=batch_within,
        fetch_max_wait=fetch_max_wait,
        checkpoint_interval=checkpoint_interval,
    )
    run_worker(settings, factory, options, loglevel=log_level)


worker_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
worker_app.command()(worker)


def main() -> None:
    """Entry point of ``python -m rollwatch.agents``."""
    run_app(worker_app, "rollwatch worker")
