"""The ``rollwatch`` command line (typer).

Each command is a thin shell over a library function, so everything it does is also
reachable (and tested) from Python. Errors of ours print one clear line and exit
non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import orjson
import typer

from rollwatch import __version__
from rollwatch.agents.cli import worker
from rollwatch.console import run_app
from rollwatch.flagstore.cli import drill_command, flagstore_command
from rollwatch.ops import manual_cli
from rollwatch.ops.cli import (
    record_command,
    status_command,
    tail_command,
    ticket_publish_command,
    ticket_retire_command,
    traffic_command,
)
from rollwatch.replay_cli import replay
from rollwatch.settings import Settings, load_settings
from rollwatch.tickets.cli import ticket_app
from rollwatch.trust.cli import keys_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="rollwatch",
    help="Roll AI features back when a model change starts hurting users.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Kafka topics rollwatch uses.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(config_app, name="config")
app.add_typer(ticket_app, name="ticket")
app.add_typer(keys_app, name="keys")
app.command()(replay)
app.command("flagstore")(flagstore_command)
app.command("drill")(drill_command)
app.command("worker")(worker)
app.command("tail")(tail_command)
app.command("status")(status_command)
app.command("traffic")(traffic_command)
app.command("record")(record_command)
ticket_app.command("publish")(ticket_publish_command)
ticket_app.command("retire")(ticket_retire_command)
manual_cli.register(app)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (else $ROLLWATCH_CONFIG).")
]


def _settings(config: Path | None, **overrides: object) -> Settings:
    return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})


@app.command()
def version() -> None:
    """Print the rollwatch version."""
    typer.echo(__version__)


@app.command()
def broker(
    port: Annotated[int | None, typer.Option(help="Port (default: ROLLWATCH_BROKER_PORT or 9092).")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, in memory) until Ctrl-C."""
    from rollwatch.broker import EmbeddedBroker

    settings = _settings(config, broker_port=port)

    def _stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    embedded = EmbeddedBroker(settings.broker_host, settings.broker_port)
    try:
        # Everything after start() sits inside the try, so a Ctrl-C at any moment stops the child.
        embedded.start()
        typer.echo(f"rollwatch broker listening on {embedded.bootstrap_servers} (in memory; Ctrl-C stops it)")
        code = embedded.wait()
        typer.echo(f"the broker exited by itself with code {code}", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("stopping broker")
    finally:
        embedded.stop()


@topics_app.command("create")
def topics_create(config: ConfigOption = None) -> None:
    """Create any missing rollwatch topic (releases and flags compacted)."""
    from rollwatch.kafka import ensure_topics

    settings = _settings(config)
    created = asyncio.run(ensure_topics(settings))
    for role, name in settings.topics().items():
        typer.echo(f"{role:<10} {name}{'  (created)' if name in created else ''}")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"rollwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Roll AI features back when a model change starts hurting users."""


@config_app.command("show")
def config_show(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, secrets masked.")] = False,
) -> None:
    """Print the effective settings, secrets masked."""
    settings = _settings(config)
    if as_json:
        typer.echo(orjson.dumps(settings.model_dump(mode="json")).decode())
        return
    for name, value in settings.model_dump().items():
        typer.echo(f"{name} = {value}")


@app.command()
def demo(
    round_trip: Annotated[
        bool, typer.Option("--round-trip", help="Only round-trip a few events through a broker and print them.")
    ] = False,
) -> None:
    """A canary regresses and rollwatch rolls it back: broker, worker and traffic on this machine."""
    if round_trip:
        from rollwatch.demo import run_demo

        raise typer.Exit(run_demo(typer.echo))
    from rollwatch.rollback_demo import run_rollback_demo

    raise typer.Exit(run_rollback_demo(typer.echo))


def main() -> None:
    run_app(app, "rollwatch")
