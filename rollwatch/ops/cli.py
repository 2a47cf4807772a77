"""The operator commands, as plain functions to mount on the main typer app::

    from rollwatch.ops.cli import status_command, tail_command, ticket_publish_command, traffic_command
    app.command("tail")(tail_command)
    app.command("status")(status_command)
    app.command("traffic")(traffic_command)
    ticket_app.command("publish")(ticket_publish_command)   # rollwatch ticket publish FILE

Colour follows the terminal: on when stdout is a TTY and ``NO_COLOR`` is unset, never in
``--json`` output, so the same command reads well on screen and parses in a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import orjson
import typer

from rollwatch.commands import ACTIONS, RollbackCommand
from rollwatch.console import run_app
from rollwatch.ops.errors import OpsError
from rollwatch.ops.records import Role, TailFilter, TailRecord
from rollwatch.ops.status import collect_status, render_status
from rollwatch.ops.tail import StartAt, parse_since, read_records, tail
from rollwatch.ops.traffic import TrafficRun, for_ticket, send_traffic
from rollwatch.settings import Settings, load_settings
from rollwatch.synth import Regression, Traffic
from rollwatch.tickets.durations import parse_duration

__all__ = [
    "ColorMode",
    "main",
    "ops_app",
    "record_command",
    "status_command",
    "tail_command",
    "ticket_publish_command",
    "traffic_command",
    "use_color",
]

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (else $ROLLWATCH_CONFIG).")
]


class ColorMode(StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


ColorOption = Annotated[ColorMode, typer.Option("--color", help="Colour: auto (a terminal), always, never.")]


def use_color(mode: ColorMode, as_json: bool = False) -> bool:
    """Whether to emit ANSI styles: never for JSON, else per ``mode`` (auto: a TTY without NO_COLOR)."""
    if as_json or mode is ColorMode.never:
        return False
    if mode is ColorMode.always:
        return True
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _settings(config: Path | None) -> Settings:
    return load_settings(config)


def _run_until_signal(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)``; SIGINT and SIGTERM set ``stop`` so it can finish its output cleanly."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    return asyncio.run(runner())


def _echo_or_quit(line: str, color: bool | None = None) -> None:
    try:
        # ``color=True`` keeps the styles when stdout is a pipe (``--color always``).
        typer.echo(line, color=color)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, without a traceback at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


def tail_command(
    workflow: Annotated[
        list[str] | None, typer.Option("--workflow", "-w", help="Only this workflow (repeatable).")
    ] = None,
    action: Annotated[list[str] | None, typer.Option("--action", "-a", help="Only this action (repeatable).")] = None,
    acks: Annotated[bool, typer.Option("--acks", help="Also show consumers' acknowledgements.")] = False,
    deadletters: Annotated[bool, typer.Option("--deadletters", help="Also show rejected telemetry.")] = False,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the oldest record.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Start at a moment: 15m, 2h, 7d ago, or an RFC 3339 time.")
    ] = None,
    until_end: Annotated[
        bool, typer.Option("--until-end", help="Stop after the records present at start (for scripts).")
    ] = False,
    limit: Annotated[int | None, typer.Option("--max", min=1, help="Stop after this many records.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    color: ColorOption = ColorMode.auto,
    config: ConfigOption = None,
) -> None:
    """Follow rollback commands on the control topic, one line each (Ctrl-C stops)."""
    unknown = sorted(set(action or ()) - set(ACTIONS))
    if unknown:
        raise typer.BadParameter(f"unknown action {unknown[0]!r}; one of {', '.join(ACTIONS)}", param_hint="--action")
    if from_beginning and since:
        raise typer.BadParameter("use --from-beginning or --since, not both", param_hint="--since")
    start = StartAt("beginning") if from_beginning else StartAt.since(parse_since(since)) if since else StartAt()
    roles: list[Role] = ["control"]
    roles += ["acks"] if acks else []
    roles += ["deadletter"] if deadletters else []
    settings = _settings(config)
    selection = TailFilter(frozenset(workflow or ()), frozenset(action or ()))
    colored = use_color(color, as_json)

    def main(stop: asyncio.Event) -> Awaitable[int]:
        return tail(
            settings,
            lambda line: _echo_or_quit(line, colored or None),
            roles=roles,
            start=start,
            selection=selection,
            as_json=as_json,
            color=colored,
            until_end=until_end,
            limit=limit,
            stop=stop,
        )

    _run_until_signal(main)


async def last_commands(settings: Settings, timeout: float) -> dict[str, RollbackCommand]:
    """The newest command per workflow on the control topic, read to its current end."""
    latest: dict[str, RollbackCommand] = {}

    async def read() -> None:
        async for batch in read_records(settings, ["control"], StartAt("beginning"), until_end=True):
            for record in batch:
                command = record.command
                if command is not None and (
                    command.workflow not in latest or command.issued_at >= latest[command.workflow].issued_at
                ):
                    latest[command.workflow] = command

    await asyncio.wait_for(read(), timeout)
    return latest


def status_command(
    worker: Annotated[
        list[str] | None,
        typer.Option(
            "--worker",
            "-u",
            envvar="ROLLWATCH_STATUS_URLS",
            help="A worker's base URL (repeatable; default http://127.0.0.1:<web_port>).",
        ),
    ] = None,
    commands: Annotated[
        bool, typer.Option("--commands/--no-commands", help="Read the last command per workflow from Kafka.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each worker and for Kafka.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    color: ColorOption = ColorMode.auto,
    config: ConfigOption = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-W", help="Keep watching: redraw on a terminal, a view per change piped.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls with --watch.")] = 2.0,
    frames: Annotated[int | None, typer.Option(help="With --watch: stop after this many views.")] = None,
) -> None:
    """Workflows, their arms, gate values against thresholds, rollout and last decision."""
    settings = _settings(config)
    urls = worker or [f"http://127.0.0.1:{settings.web_port}"]
    if watch:
        _watch(settings, urls, commands, timeout, as_json, color, interval, frames)
        return
    issued: dict[str, RollbackCommand] = {}
    if commands:
        try:
            issued = asyncio.run(last_commands(settings, timeout))
        except (OpsError, TimeoutError) as exc:
            typer.secho(f"rollwatch status: no last commands from Kafka: {exc or 'timed out'}", err=True, fg="yellow")
    report = collect_status(urls, timeout=timeout, commands=issued)
    if as_json:
        doc = {
            "unreachable": report.unreachable,
            "ticket_refusals": report.ticket_refusals,
            "workflows": [
                {
                    "workflow": v.workflow,
                    "worker": v.worker,
                    "ready": v.ready,
                    "last_decision": None
                    if v.last is None
                    else {
                        "at": v.last.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                        "kind": v.last.kind,
                        "action": v.last.action,
                        "gate": v.last.gate,
                        "command_id": v.last.command_id,
                    },
                    "engine": v.engine,
                }
                for v in report.workflows
            ],
        }
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        colored = use_color(color)
        typer.echo(render_status(report, color=colored), color=colored or None)
    if report.unreachable:
        raise typer.Exit(1)


def _watch(
    settings: Settings,
    urls: list[str],
    commands: bool,
    timeout: float,
    as_json: bool,
    color: ColorMode,
    interval: float,
    frames: int | None,
) -> None:
    from rollwatch.ops.watch import watch_status

    mode = "json" if as_json else "tty" if sys.stdout.isatty() else "lines"

    def records(stop: asyncio.Event) -> AsyncIterator[list[TailRecord]]:
        return read_records(settings, ["control", "acks"], StartAt("beginning"), stop=stop)

    _run_until_signal(
        lambda stop: watch_status(
            urls,
            _echo_or_quit,
            mode,  # type: ignore[arg-type]
            stop,
            records=records if commands else None,
            color=use_color(color, as_json),
            interval=interval,
            timeout=timeout,
            max_frames=frames,
        )
    )


def ticket_publish_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The release ticket (YAML or JSON).")],
    config: ConfigOption = None,
) -> None:
    """Validate a release ticket and put it in force on the releases topic (keyed by its workflow)."""
    from rollwatch.ops.traffic import publish_ticket
    from rollwatch.tickets.load import load_ticket

    ticket = load_ticket(file)
    settings = _settings(config)
    partition, offset = asyncio.run(publish_ticket(settings, ticket, file.read_bytes()))
    typer.echo(
        f"{ticket.ticket} r{ticket.revision} is in force for {ticket.workflow} "
        f"({settings.topic_releases}[{partition}]@{offset})"
    )


def ticket_retire_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The ticket in force to retire.")],
    config: ConfigOption = None,
) -> None:
    """Take a workflow's ticket out of force with a signed retirement (a bare tombstone is refused)."""
    from rollwatch.ops.traffic import retire_ticket
    from rollwatch.tickets.load import load_ticket

    ticket = load_ticket(file)
    settings = _settings(config)
    partition, offset = asyncio.run(retire_ticket(settings, ticket))
    typer.echo(
        f"{ticket.ticket} r{ticket.revision} is retired for {ticket.workflow} "
        f"({settings.topic_releases}[{partition}]@{offset})"
    )


def traffic_command(
    ticket: Annotated[
        Path | None,
        typer.Option(
            "--ticket", "-t", exists=True, dir_okay=False, help="Publish this ticket first; use its workflow/routes."
        ),
    ] = None,
    publish_ticket: Annotated[
        bool,
        typer.Option(
            "--publish-ticket/--no-publish-ticket",
            help="Put --ticket in force first; off when a release manager publishes it (telemetry only).",
        ),
    ] = True,
    workflow: Annotated[str, typer.Option(help="Workflow (without --ticket).")] = "support-summary",
    rate: Annotated[float, typer.Option(min=0.1, help="Calls per second of event time.")] = 20.0,
    candidate_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of calls on the candidate.")] = 0.05,
    regression: Annotated[str, typer.Option(help="none, schema, latency, cost, reviews, ...")] = "none",
    onset: Annotated[str, typer.Option(help="When the regression starts, after the start.")] = "10m",
    duration: Annotated[str, typer.Option(help="How much event time to generate.")] = "1h",
    seed: Annotated[int | None, typer.Option(help="Random seed (default: from the clock, so ids differ).")] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Events per Kafka message.")] = 100,
    pace: Annotated[float, typer.Option(min=0.01, help="Event seconds per wall second (1 = real time).")] = 1.0,
    backfill: Annotated[bool, typer.Option("--backfill", help="Send at once, stamped to end now (no pacing).")] = False,
    config: ConfigOption = None,
) -> None:
    """Publish synthetic telemetry (both arms, an optional injected regression) to the telemetry topic."""
    from rollwatch.synth import REGRESSIONS
    from rollwatch.tickets.load import load_ticket

    allowed = ("none", *REGRESSIONS, "provider_outage")
    if regression not in allowed:
        raise typer.BadParameter(f"{regression!r}; one of {', '.join(allowed)}", param_hint="--regression")
    try:
        traffic = Traffic(
            workflow=workflow,
            control_route=f"{workflow}/stable",
            candidate_route=f"{workflow}/candidate",
            duration_ms=parse_duration(duration),
            onset_ms=parse_duration(onset),
            calls_per_second=rate,
            candidate_share=candidate_share,
            regression=regression,  # checked against the allowed names above
            seed=seed if seed is not None else int(datetime.now(UTC).timestamp()),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if traffic.regression != "none" and traffic.onset_ms >= traffic.duration_ms:
        raise typer.BadParameter(
            f"{onset} is not before the end of the run (--duration {duration}): the regression would never start",
            param_hint="--onset",
        )
    raw = None
    if ticket is not None:
        traffic = for_ticket(traffic, load_ticket(ticket))
        raw = ticket.read_bytes() if publish_ticket else None
    settings = _settings(config)
    kind: Regression = traffic.regression
    typer.echo(
        f"traffic for {traffic.workflow} on {settings.bootstrap_servers}: {rate:g} calls/s, "
        f"{candidate_share:.0%} candidate, regression {kind} after {onset}, {duration}"
        + (" (backfill)" if backfill else f" at {pace:g}x")
    )

    def report(run: TrafficRun) -> None:
        at = datetime.fromtimestamp((run.last_ts_ms or 0) / 1000, UTC).strftime("%H:%M:%SZ")
        typer.echo(f"  {run.events:,} events in {run.messages:,} messages (event time {at})")

    def main(stop: asyncio.Event) -> Awaitable[TrafficRun]:
        return send_traffic(
            settings,
            traffic,
            batch_size=batch,
            pace=None if backfill else pace,
            ticket_raw=raw,
            progress=report,
            stop=stop,
        )

    run = _run_until_signal(main)
    typer.echo(f"sent {run.events:,} events in {run.messages:,} messages")


def record_command(
    output: Annotated[Path, typer.Argument(dir_okay=False, help="The JSONL file to write (replay reads it).")],
    since: Annotated[
        str | None,
        typer.Option("--since", help="From a moment: 24h, 7d ago, or an RFC 3339 time (default: the start)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Up to a moment (excluded), same forms (default: now).")
    ] = None,
    workflow: Annotated[
        list[str] | None, typer.Option("--workflow", "-w", help="Only messages keyed by this workflow (repeatable).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
    config: ConfigOption = None,
) -> None:
    """Record the telemetry topic (or a time range of it) to JSONL, for `rollwatch replay`."""
    from rollwatch.ops.record import check_output, record_telemetry

    since_ms = parse_since(since) if since else None
    until_ms = parse_since(until) if until else None
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise typer.BadParameter(f"{until} is not after --since {since}", param_hint="--until")
    check_output(output, force)
    settings = _settings(config)
    partial = output.with_name(output.name + ".partial")
    # The bar is for a person watching: on a terminal only, on stderr, so stdout stays the summary.
    bar_context = (
        typer.progressbar(length=1, label="recording", file=sys.stderr)
        if sys.stderr.isatty()
        else contextlib.nullcontext(None)
    )
    with bar_context as bar, partial.open("wb") as out:

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

        try:
            result = asyncio.run(
                record_telemetry(
                    settings,
                    out,
                    since_ms=since_ms,
                    until_ms=until_ms,
                    workflows=frozenset(workflow or ()),
                    progress=progress,
                )
            )
        except BaseException:
            out.close()
            partial.unlink(missing_ok=True)
            raise
    partial.replace(output)  # a file replay reads is never half written
    span = ""
    if result.first_ms is not None and result.last_ms is not None:
        first = datetime.fromtimestamp(result.first_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        last = datetime.fromtimestamp(result.last_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        span = f", {first} to {last}"
    typer.echo(
        f"recorded {result.written:,} messages to {output}{span} "
        f"({result.skipped_workflow:,} of other workflows, {result.skipped:,} skipped)"
    )


ops_app = typer.Typer(
    name="rollwatch-ops",
    help="rollwatch operator commands (also mounted on `rollwatch`).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ops_app.command("tail")(tail_command)
ops_app.command("status")(status_command)
ops_app.command("traffic")(traffic_command)
ops_app.command("ticket-publish")(ticket_publish_command)


def main() -> None:
    """Entry point of ``python -m rollwatch.ops``: the same commands before they are mounted."""
    run_app(ops_app, "rollwatch")
