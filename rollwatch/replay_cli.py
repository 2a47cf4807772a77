"""``rollwatch replay``: the timeline of decisions a ticket would have made on a recorded file."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

if TYPE_CHECKING:
    from rollwatch.gates.result import GateResult
    from rollwatch.replay import ReplayReport

__all__ = ["replay"]


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _gate_json(result: GateResult) -> dict[str, Any]:
    from rollwatch.gates.result import gate_json

    return gate_json(result)


def _as_json(report: ReplayReport) -> bytes:
    return orjson.dumps(
        {
            "events": report.events,
            "invalid": report.invalid,
            "late": report.late,
            "duplicates": report.duplicates,
            "seconds": report.seconds,
            "events_per_second": report.rate,
            "timeline": [
                {
                    "at": _clock(e.at_ms),
                    "at_ms": e.at_ms,
                    "kind": e.decision.kind,
                    "gate": e.decision.gate,
                    "action": e.decision.action,
                    "command_id": e.decision.command_id,
                    "flags": dict(e.decision.flags),
                    "note": e.decision.note,
                    "result": _gate_json(e.decision.result),
                }
                for e in report.timeline
            ],
            "final": [_gate_json(r) for r in report.final],
        },
        option=orjson.OPT_INDENT_2,
    )


def replay(
    telemetry: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL, one message a line.")
    ],
    ticket: Annotated[Path, typer.Option("--ticket", "-t", exists=True, dir_okay=False, help="Release ticket YAML.")],
    every: Annotated[str, typer.Option(help="Judge every this much event time (e.g. 30s, 1m).")] = "1m",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", dir_okay=False, help="Also write an HTML report with charts.")
    ] = None,
    png: Annotated[Path | None, typer.Option("--png", dir_okay=False, help="Also write the charts as a PNG.")] = None,
) -> None:
    """Replay recorded telemetry through a ticket's gates and print the decisions in event time."""
    # Imported here: the engine pulls in river and friends, which `rollwatch --help` need not pay for.
    from rollwatch.gates.result import evidence_text
    from rollwatch.replay import replay_file
    from rollwatch.tickets.durations import parse_duration
    from rollwatch.tickets.load import load_ticket

    parsed = load_ticket(ticket)
    size = telemetry.stat().st_size
    every_ms = parse_duration(every)
    keep = report is not None or png is not None
    if as_json or size < 5_000_000:
        result = replay_file(parsed, telemetry, every_ms=every_ms, keep_samples=keep)
    else:
        # A progress bar on stderr for large files, so stdout stays the timeline.
        with typer.progressbar(length=size, label="replaying", file=sys.stderr) as bar:
            result = replay_file(parsed, telemetry, every_ms=every_ms, progress=bar.update, keep_samples=keep)
    if keep:
        from rollwatch.ops.report import write_png_report, write_report

        if report is not None:
            write_report(parsed, result, report, png)
        elif png is not None:
            write_png_report(parsed, result, png)
        typer.echo(f"report written: {', '.join(str(p) for p in (report, png) if p)}", err=True)
    if as_json:
        typer.echo(_as_json(result).decode())
    else:
        typer.echo(
            f"{parsed.ticket} r{parsed.revision} on {parsed.workflow}: {result.events:,} events "
            f"({result.invalid} invalid, {result.late} late, {result.duplicates} duplicates) "
            f"in {result.seconds:.2f}s = {result.rate:,.0f} events/s"
        )
        for sample in result.invalid_samples:
            typer.echo(f"  invalid: {sample}")
        if not result.timeline:
            typer.echo("no decision: every gate held")
        for entry in result.timeline:
            d, r = entry.decision, entry.decision.result
            typer.echo(
                f"{_clock(entry.at_ms)}  {d.kind.upper():<8} {d.gate:<20} {d.action:<26} "
                f"{r.metric}={_value(r.observed)} vs {_value(r.threshold)} (control {_value(r.control)}, "
                f"{r.window}, samples {dict(r.samples)})  {d.command_id}"
            )
            if d.note:
                typer.echo(f"    {d.note}")
            if evidence_text(r):
                typer.echo(f"    {evidence_text(r)}")
        typer.echo("gates at the end:")
        for r in result.final:
            need = f" needs {dict(r.needed)}" if r.needed else ""
            evidence = evidence_text(r)
            typer.echo(
                f"  {r.gate:<20} {r.state:<12} {r.metric}={_value(r.observed)} vs {_value(r.threshold)}{need}"
                + (f"  [{evidence}]" if evidence else "")
                + (f"  ({r.detail})" if r.detail else "")
            )
