"""``rollwatch keys``: the key pair it prints signs what a consumer with its keyring entry accepts."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from typer.testing import CliRunner

from rollwatch.cli import app
from rollwatch.commands import decode_command, encode_command
from rollwatch.signing import sign_command, verify_command
from rollwatch.trust import load_keyring, parse_signing_key
from tests.control.helpers import command, example_ticket

RUNNER = CliRunner()


def test_generate_prints_settings_and_an_entry_a_keyring_loads(tmp_path: Path) -> None:
    made = RUNNER.invoke(app, ["keys", "generate", "--principal", "ic-rotation", "--json"])
    assert made.exit_code == 0, made.output
    doc = orjson.loads(made.output)
    settings, entry = doc["settings"], doc["keyring_entry"]
    assert settings["ROLLWATCH_SIGNING_KEY_ID"] == "ic-rotation-key" and entry["may_sign"] == ["commands"]
    path = tmp_path / "keyring.json"
    path.write_text(json.dumps({"format": "rollwatch.keyring/v1", "principals": [entry]}))
    keyring = load_keyring(path)
    # A command signed with the printed private key verifies under the printed entry, as ic-rotation.
    key = parse_signing_key(settings["ROLLWATCH_SIGNING_KEY_ID"], settings["ROLLWATCH_SIGNING_KEY"], "ic-rotation")
    raw = encode_command(sign_command(command(example_ticket(), "disable_tools", {"ai.tools.enabled": False}), key=key))
    assert verify_command(decode_command(raw), keyring, raw).principal == "ic-rotation"
    checked = RUNNER.invoke(app, ["keys", "check", str(path)])
    assert (
        checked.exit_code == 0
        and checked.output.strip() == "ic-rotation: may sign commands; keys ic-rotation-key (ed25519)"
    )


def test_generate_as_text_and_a_bad_purpose() -> None:
    made = RUNNER.invoke(app, ["keys", "generate", "-p", "release-bot", "--may-sign", "tickets"])
    assert made.exit_code == 0
    lines = made.output.splitlines()
    assert "ROLLWATCH_PRINCIPAL=release-bot" in lines and any(
        line.startswith("ROLLWATCH_SIGNING_KEY=ed25519:") for line in lines
    )
    bad = RUNNER.invoke(app, ["keys", "generate", "-p", "x", "--may-sign", "everything"])
    flat = " ".join(bad.output.replace("│", " ").split())  # typer draws the error in a box
    assert bad.exit_code == 2 and "expected one of commands, tickets, flags" in flat
