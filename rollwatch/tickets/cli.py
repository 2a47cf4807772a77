"""``rollwatch ticket ...``: check release tickets and read them back in plain words.

Mounted by the main CLI; runnable alone as ``python -m rollwatch.tickets.cli``. Output
lines are ``FILE:LINE: field: message`` so editors and CI annotate the right line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rollwatch.tickets.explain import explain as explain_ticket
from rollwatch.tickets.load import check_ticket

__all__ = ["ticket_app"]

ticket_app = typer.Typer(
    name="ticket",
    help="Validate and explain release tickets (the written rollback plan of a model change).",
    no_args_is_help=True,
    add_completion=False,
)


@ticket_app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Release-ticket YAML or JSON files.", show_default=False)],
) -> None:
    """Check each ticket; print FILE: ok, or every problem as FILE:LINE: field: message. Exit 1 on any problem."""
    failed = False
    for path in files:
        result = check_ticket(path)
        if isinstance(result, list):
            failed = True
            for problem in result:
                typer.echo(str(problem))
        else:
            typer.echo(f"{path}: ok")
    if failed:
        raise typer.Exit(1)


@ticket_app.command()
def explain(
    file: Annotated[Path, typer.Argument(help="A release-ticket YAML or JSON file.", show_default=False)],
) -> None:
    """Print the ticket in plain words: gates, canary plan, first rollback, authority, customer messages."""
    result = check_ticket(file)
    if isinstance(result, list):
        for problem in result:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1)
    typer.echo(explain_ticket(result), nl=False)


if __name__ == "__main__":  # pragma: no cover
    ticket_app()
