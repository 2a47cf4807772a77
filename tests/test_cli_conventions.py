"""CLI conventions of issue 14: --version, shell completion, --json on ticket validate/explain and config show,
and the manual verbs' argument errors (one line, before any network)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from rollwatch import __version__
from rollwatch.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GOOD = EXAMPLES / "support-summary.ticket.yaml"
runner = CliRunner()


def test_version_flag_and_completion() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"rollwatch {__version__}"
    completion = runner.invoke(app, ["--show-completion", "bash"])
    assert completion.exit_code == 0 and "_ROLLWATCH_COMPLETE" in completion.output
    # The completion protocol itself answers with our commands.
    env = {"_ROLLWATCH_COMPLETE": "complete_bash", "COMP_WORDS": "rollwatch ab", "COMP_CWORD": "1"}
    answered = runner.invoke(app, [], env=env, prog_name="rollwatch")
    assert "abort" in answered.output.split()


def test_config_show_json_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLWATCH_SIGNING_KEY", "very-secret")
    result = runner.invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    settings = orjson.loads(result.output)
    assert settings["topic_control"] == "rollwatch.control"
    assert settings["signing_key"] == "**********" and "very-secret" not in result.output


def test_ticket_validate_json_reports_every_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ticket.yaml"
    bad.write_text(GOOD.read_text(encoding="utf-8").replace("revision: 3", "revision: -1"), encoding="utf-8")
    result = runner.invoke(app, ["ticket", "validate", "--json", str(GOOD), str(bad)])
    assert result.exit_code == 1
    report = orjson.loads(result.output)
    assert report["ok"] is False
    good_row, bad_row = report["files"]
    assert good_row == {"file": str(GOOD), "ok": True, "problems": []}
    assert bad_row["ok"] is False and bad_row["problems"][0]["field"] == "revision"
    assert bad_row["problems"][0]["line"] == 6


def test_ticket_explain_json() -> None:
    result = runner.invoke(app, ["ticket", "explain", "--json", str(GOOD)])
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.output)
    assert (doc["ticket"], doc["revision"], doc["workflow"]) == ("REL-2041", 3, "support-summary")
    assert doc["canary"]["plan"] == [5.0, 10.0, 25.0, 50.0, 100.0]
    assert doc["authority"]["product_owner"] == {"principal": "luis.ortega", "may": ["freeze_rollout"]}
    assert [g["name"] for g in doc["gates"]][:2] == ["json-failures", "p95-latency"]
    assert doc["text"].startswith("Release ticket REL-2041 (revision 3)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["abort", "--workflow", "wf", "--reason", " "], "a reason is required"),
        (["pause", "--workflow", "wf", "--reason", "x", "--as", "janitor"], "'janitor': expected one of"),
        (["resume", "--workflow", "wf", "--reason", "x", "--expires", "soon"], "is not a duration"),
    ],
)
def test_manual_verbs_refuse_bad_arguments_in_one_line(argv: list[str], message: str) -> None:
    result = runner.invoke(app, argv, env={k: v for k, v in os.environ.items() if not k.startswith("ROLLWATCH_")})
    assert result.exit_code == 2
    assert message in result.output
