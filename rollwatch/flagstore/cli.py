"""``rollwatch flagstore`` and ``rollwatch drill``: thin shells over the library.

Mount with ``app.command("flagstore")(flagstore_command)`` and
``app.command("drill")(drill_command)``. Errors of ours are raised as
:class:`~rollwatch.errors.RollwatchError` for ``rollwatch.cli.main`` to print.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings, load_settings

__all__ = ["drill_command", "flagstore_command", "serve_flagstore"]

log = logging.getLogger(__name__)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (else $ROLLWATCH_CONFIG).")
]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})


async def serve_flagstore(settings: Settings, name: str, use_redis: bool, stop: asyncio.Event) -> None:
    """Run a flag store, its HTTP endpoint and the apply-latency monitor until ``stop`` is set."""
    from redis.asyncio import Redis

    from rollwatch.flagstore.http import serve
    from rollwatch.flagstore.latency import AckMonitor, ApplyLatency
    from rollwatch.flagstore.redis_sink import RedisFlags
    from rollwatch.flagstore.service import FlagStore
    from rollwatch.kafka import ensure_topics

    await ensure_topics(settings)
    redis = RedisFlags(Redis.from_url(settings.redis_url), settings.redis_prefix) if use_redis else None
    store = FlagStore(settings, name=name, redis=redis)
    monitor = AckMonitor(settings, ApplyLatency(store.registry, settings.command_ack_deadline_s))
    await store.start()
    try:
        await monitor.start()
        runner = await serve(store, settings.flagstore_host, settings.flagstore_port)
        typer.echo(
            f"flag store {name!r} on {settings.bootstrap_servers}: "
            f"http://{settings.flagstore_host}:{settings.flagstore_port}/flags (Ctrl-C stops it)"
        )
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        await monitor.stop()
        await store.stop()
        if redis is not None:
            await redis.close()


def flagstore_command(
    config: ConfigOption = None,
    name: Annotated[str, typer.Option(help="Consumer name in acks and audits.")] = "flagstore",
    port: Annotated[int | None, typer.Option(help="HTTP port (default: ROLLWATCH_FLAGSTORE_PORT).")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL (default: ROLLWATCH_REDIS_URL).")] = None,
    no_redis: Annotated[bool, typer.Option("--no-redis", help="Do not materialize flags to Redis.")] = False,
    audit_file: Annotated[Path | None, typer.Option(help="Append audit records to this JSON-lines file.")] = None,
) -> None:
    """Run the flag store: apply verified rollback commands, publish and serve the flags in force."""
    settings = _settings(config, flagstore_port=port, redis_url=redis_url, flagstore_audit_path=audit_file)
    # A broker that cannot be reached is one line before the service log starts.
    asyncio.run(ensure_topics(settings))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve_flagstore(settings, name, not no_redis, stop)

    asyncio.run(main())
    typer.echo("flag store stopped")


def drill_command(
    workflow: Annotated[str, typer.Option("--workflow", "-w", help="The workflow whose rollback flags to prove.")],
    consumer: Annotated[
        list[str] | None, typer.Option("--consumer", help="A consumer whose ack is required (repeatable).")
    ] = None,
    segment: Annotated[str, typer.Option(help="Segment to drill; no real traffic should use it.")] = "rollwatch-drill",
    whole_workflow: Annotated[
        bool, typer.Option("--whole-workflow", help="Drill the workflow-wide flags instead of a segment.")
    ] = False,
    deadline: Annotated[
        float | None, typer.Option(help="Seconds each consumer has (default: ROLLWATCH_COMMAND_ACK_DEADLINE_S).")
    ] = None,
    as_principal: Annotated[str | None, typer.Option("--as", help="Issue as this owner of the ticket.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
    config: ConfigOption = None,
) -> None:
    """Prove the rollback flags: flip them by signed command, time each consumer's ack, restore."""
    from rollwatch.flagstore.drill import run_drill

    settings = _settings(config)
    report = asyncio.run(
        run_drill(
            settings,
            workflow,
            consumers=consumer or ["flagstore"],
            segment=None if whole_workflow else segment,
            deadline_s=deadline,
            principal=as_principal,
        )
    )
    if as_json:
        typer.echo(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        for line in report.lines():
            typer.echo(line)
    raise typer.Exit(0 if report.ok else 1)
