"""``rollwatch ticket validate|explain`` through typer's test runner."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rollwatch.tickets import explain, load_ticket
from rollwatch.tickets.cli import ticket_app
from tests.tickets.documents import EXAMPLES, GOOD_EXAMPLES, example_path

RUNNER = CliRunner()
BAD = str(EXAMPLES / "bad.ticket.yaml")


def test_validate_good_files_prints_ok_and_exits_zero() -> None:
    paths = [str(example_path(n)) for n in GOOD_EXAMPLES]
    result = RUNNER.invoke(ticket_app, ["validate", *paths])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"{p}: ok" for p in paths]


def test_validate_prints_every_problem_and_exits_one() -> None:
    good = str(example_path("support-summary"))
    result = RUNNER.invoke(ticket_app, ["validate", BAD, good])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[-1] == f"{good}: ok"
    assert len(lines) == 19
    assert lines[0] == f"{BAD}:6: revision: must be a whole number, got a string ('3')"
    assert f"{BAD}:66: gates[2].direction: must be below for avg_quality_score: lower quality is worse" in lines


def test_validate_a_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.yaml")
    result = RUNNER.invoke(ticket_app, ["validate", missing])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{missing}: cannot read the file")


def test_validate_needs_a_file() -> None:
    result = RUNNER.invoke(ticket_app, ["validate"])
    assert result.exit_code == 2
    assert "Missing argument" in result.output


def test_explain_prints_the_explanation() -> None:
    path = example_path("refund-drafting")
    result = RUNNER.invoke(ticket_app, ["explain", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == explain(load_ticket(path))


def test_explain_a_bad_ticket_lists_problems_on_stderr() -> None:
    result = RUNNER.invoke(ticket_app, ["explain", BAD])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 18 and result.stderr.startswith(f"{BAD}:6: revision:")


def test_no_arguments_shows_help() -> None:
    result = RUNNER.invoke(ticket_app, [])
    assert "validate" in result.output and "explain" in result.output
