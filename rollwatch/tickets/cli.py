"""``rollwatch ticket ...``: check release tickets and read them back in plain words.

Mounted by the main CLI; runnable alone as ``python -m rollwatch.tickets.cli``. Output
lines are ``FILE:LINE: field: message`` so editors and CI annotate the right line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from rollwatch.tickets.authority import grant_of
from rollwatch.tickets.catalogue import ROLES
from rollwatch.tickets.errors import TicketProblem
from rollwatch.tickets.explain import describe_action, describe_gate
from rollwatch.tickets.explain import explain as explain_ticket
from rollwatch.tickets.flags import next_rollout_percent
from rollwatch.tickets.load import check_ticket
from rollwatch.tickets.model import Ticket

__all__ = ["explain_json", "ticket_app"]

ticket_app = typer.Typer(
    name="ticket",
    help="Validate and explain release tickets (the written rollback plan of a model change).",
    no_args_is_help=True,
    add_completion=False,
)


JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object on stdout, for scripts and CI.")]


def _problem(problem: TicketProblem) -> dict[str, Any]:
    return {"file": problem.file, "line": problem.line, "field": problem.field, "message": problem.message}


def _plan(ticket: Ticket) -> list[float]:
    percents, percent = [], float(ticket.canary.start_percent)
    while percent not in percents:
        percents.append(percent)
        percent = next_rollout_percent(ticket, percent)
    return percents


def explain_json(ticket: Ticket) -> dict[str, Any]:
    """``ticket explain --json``: the same plain words, and the structure behind them."""
    return {
        "ticket": ticket.ticket,
        "revision": ticket.revision,
        "workflow": ticket.workflow,
        "canary": {
            "start_percent": ticket.canary.start_percent,
            "plan": _plan(ticket),
            "hold_ms": int(ticket.canary.hold),
        },
        "gates": [{"name": g.name, "kind": g.kind, "says": describe_gate(ticket, g)} for g in ticket.gates],
        "first_rollback": [describe_action(ticket, a) for a in ticket.first_rollback],
        "authority": {
            role: {"principal": getattr(ticket.owners, role), "may": list(grant_of(ticket.authority, role))}
            for role in ROLES
        },
        "text": explain_ticket(ticket),
    }


@ticket_app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Release-ticket YAML or JSON files.", show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """Check each ticket; print FILE: ok, or every problem as FILE:LINE: field: message. Exit 1 on any problem."""
    failed = False
    report = []
    for path in files:
        result = check_ticket(path)
        if isinstance(result, list):
            failed = True
            report.append({"file": str(path), "ok": False, "problems": [_problem(p) for p in result]})
            if not as_json:
                for problem in result:
                    typer.echo(str(problem))
        else:
            report.append({"file": str(path), "ok": True, "problems": []})
            if not as_json:
                typer.echo(f"{path}: ok")
    if as_json:
        typer.echo(orjson.dumps({"ok": not failed, "files": report}).decode())
    if failed:
        raise typer.Exit(1)


@ticket_app.command()
def explain(
    file: Annotated[Path, typer.Argument(help="A release-ticket YAML or JSON file.", show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """Print the ticket in plain words: gates, canary plan, first rollback, authority, customer messages."""
    result = check_ticket(file)
    if isinstance(result, list):
        if as_json:
            typer.echo(orjson.dumps({"ok": False, "problems": [_problem(p) for p in result]}).decode())
        for problem in result:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(orjson.dumps(explain_json(result)).decode())
        return
    typer.echo(explain_ticket(result), nl=False)


if __name__ == "__main__":  # pragma: no cover
    ticket_app()
