"""Every command, given bad arguments, settings or files: non-zero exit, one clear line, no traceback.

Each row runs the installed ``rollwatch`` script in a fresh process, as a user would.
Rows run four at a time (one module fixture) so the table costs seconds, not a minute;
each row is still its own test. A row names what the line must say (the option, file,
setting or value to fix); ``rollwatch: warning: ...`` lines (an unset signing key) are
not errors and are not counted.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rollwatch.broker import free_port

ROOT = Path(__file__).resolve().parent.parent
TICKET = ROOT / "examples" / "support-summary.ticket.yaml"
SCRIPT = Path(sys.executable).parent / "rollwatch"


@dataclass(frozen=True)
class Row:
    name: str
    args: list[str]
    says: str
    """A regular expression the one error line must match."""
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    stream: str = "stderr"


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def _files(tmp: Path) -> dict[str, str]:
    other = tmp / "other.jsonl"
    other.write_text(
        '{"type":"call","event_id":"a1","ts":1764979200,"workflow":"not-the-ticket","route":"r",'
        '"latency_ms":5,"status":"ok","schema_valid":true,"safety_blocked":false,"task_success":true,'
        '"cost_usd":0.01}\n'
    )
    words = tmp / "words.ticket.yaml"
    text = TICKET.read_text()
    assert text.count("window: 15m") >= 1
    words.write_text(text.replace("window: 15m", "window: 15 minutes", 1))
    (tmp / "bad.toml").write_text("bootstrap_servers = \n")
    (tmp / "unknown.toml").write_text("bogus_field = 1\n")
    (tmp / "notyaml.ticket.yaml").write_text("gates: [\n")
    return {"other": str(other), "words": str(words), "tmp": str(tmp)}


def _rows(files: dict[str, str], taken: int) -> list[Row]:
    t, other, tmp = str(TICKET), files["other"], files["tmp"]
    kafka = r"cannot reach Kafka at 127\.0\.0\.1:\d+ .*ROLLWATCH_BOOTSTRAP_SERVERS"
    return [
        Row("replay-every-bare-number", ["replay", "--every", "1", "-t", t, other], r"--every: '1' is not a duration"),
        Row("replay-every-word", ["replay", "--every", "1minute", "-t", t, other], r"--every: '1minute' is not a dur"),
        Row(
            "replay-every-zero", ["replay", "--every", "0s", "-t", t, other], r"--every: '0s' must be longer than zero"
        ),
        Row(
            "replay-report-missing-folder",
            ["replay", "-t", t, "--report", f"{tmp}/missing/r.html", other],
            r"--report: .*the folder .*missing does not exist",
        ),
        Row(
            "replay-other-workflow",
            ["replay", "-t", t, other],
            r"no event of workflow 'support-summary'.*not-the-ticket",
        ),
        Row("replay-missing-file", ["replay", "-t", t, f"{tmp}/nope.jsonl"], r"nope\.jsonl' does not exist"),
        Row("replay-unknown-option", ["replay", "--bogus"], r"No such option: --bogus"),
        Row(
            "ticket-validate-window-in-words",
            ["ticket", "validate", files["words"]],
            r"words\.ticket\.yaml:\d+: gates\[\d+\]\.window: .*got '15 minutes'$",
            code=1,
            stream="stdout",
        ),
        Row(
            "ticket-validate-missing",
            ["ticket", "validate", f"{tmp}/nope.yaml"],
            r"nope\.yaml: cannot read",
            code=1,
            stream="stdout",
        ),
        Row(
            "ticket-explain-not-yaml",
            ["ticket", "explain", f"{tmp}/notyaml.ticket.yaml"],
            r"notyaml\.ticket\.yaml:\d+: not valid YAML",
            code=1,
        ),
        Row(
            "config-bad-env",
            ["config", "show"],
            r"ROLLWATCH_BROKER_PORT.*'notaport'",
            env={"ROLLWATCH_BROKER_PORT": "notaport"},
        ),
        Row(
            "config-verify-keys-not-json",
            ["config", "show"],
            r"ROLLWATCH_VERIFY_KEYS: field 'verify_keys': expected JSON",
            env={"ROLLWATCH_VERIFY_KEYS": "notjson"},
        ),
        Row(
            "keyring-missing-file",
            ["keys", "check", f"{tmp}/none.json"],
            r"none\.json: cannot read the keyring file",
        ),
        Row("config-bad-toml", ["config", "show", "--config", f"{tmp}/bad.toml"], r"bad\.toml: not valid TOML"),
        Row(
            "config-unknown-field",
            ["config", "show", "-c", f"{tmp}/unknown.toml"],
            r"unknown\.toml: field 'bogus_field'",
        ),
        Row("config-missing-file", ["config", "show", "-c", f"{tmp}/none.toml"], r"none\.toml: no such config file"),
        Row("topics-create-unreachable", ["topics", "create"], kafka),
        Row("worker-unreachable", ["worker", "--web-port", str(free_port())], kafka),
        Row(
            "worker-web-port-taken",
            ["worker", "--web-port", str(taken)],
            rf"web port {taken} .*already in use.*--web-port",
        ),
        Row("worker-bad-engine", ["worker", "--engine", "nonsense:x"], r"--engine 'nonsense:x': cannot import"),
        Row("broker-port-taken", ["broker", "--port", str(taken)], rf"port {taken} .*already in use"),
        Row(
            "traffic-onset-after-end",
            ["traffic", "--regression", "schema", "--onset", "2h", "--duration", "1h"],
            r"--onset: 2h is not before the end of the run",
        ),
        Row("traffic-bad-duration", ["traffic", "--duration", "1minute"], r"'1minute' is not a duration"),
        Row("traffic-unknown-regression", ["traffic", "--regression", "slow"], r"--regression: 'slow'; one of"),
        Row("traffic-unreachable", ["traffic", "--duration", "1m"], kafka),
        Row("tail-unknown-action", ["tail", "--action", "explode"], r"--action: unknown action 'explode'"),
        Row("tail-bad-since", ["tail", "--since", "garbage"], r"--since 'garbage'"),
        Row("tail-unreachable", ["tail", "--until-end"], kafka),
        Row(
            "ticket-publish-no-key",
            ["ticket", "publish", t],
            r"needs a release manager's key: set ROLLWATCH_SIGNING_KEY",
        ),
        Row("flagstore-unreachable", ["flagstore", "--no-redis"], kafka),
        Row("drill-missing-workflow", ["drill"], r"Missing option '--workflow'"),
        Row(
            "status-no-worker",
            ["status", "--no-commands", "--worker", f"http://127.0.0.1:{free_port()}", "--timeout", "1"],
            r"no worker answered",
        ),
        Row("unknown-command", ["frobnicate"], r"No such command 'frobnicate'"),
        Row("record-missing-folder", ["record", f"{tmp}/missing/t.jsonl"], r"the folder .*missing does not exist"),
        Row("record-exists", ["record", other], r"other\.jsonl exists: pass --force"),
        Row("record-until-before-since", ["record", f"{tmp}/r.jsonl", "--since", "1h", "--until", "2h"], r"--until"),
        Row("record-unreachable", ["record", f"{tmp}/r.jsonl"], kafka),
    ]


def _run(row: Row, base_env: dict[str, str]) -> Ran:
    done = subprocess.run(
        [str(SCRIPT), *row.args],
        env=base_env | row.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Row, Ran]]]:
    tmp = tmp_path_factory.mktemp("cli")
    files = _files(tmp)
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        taken = held.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLWATCH_")}
        env |= {"ROLLWATCH_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "NO_COLOR": "1", "COLUMNS": "200"}
        rows = _rows(files, taken)
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda row: _run(row, env), rows))
        yield {row.name: (row, ran) for row, ran in zip(rows, results, strict=True)}


ROW_NAMES = [row.name for row in _rows({"other": "", "words": "", "tmp": ""}, 0)]


@pytest.mark.parametrize("name", ROW_NAMES)
def test_bad_input_is_one_clear_line(table: dict[str, tuple[Row, Ran]], name: str) -> None:
    row, ran = table[name]
    both = ran.stdout + ran.stderr
    assert "Traceback" not in both, both
    assert ran.code == row.code, both
    text = ran.stdout if row.stream == "stdout" else ran.stderr
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("rollwatch: warning:")]
    assert len(lines) == 1, both
    assert re.search(row.says, lines[0]), lines[0]
    if row.stream == "stderr":
        assert lines[0].startswith(("rollwatch", "/")), lines[0]
