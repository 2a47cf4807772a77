"""The control protocol checked from Node (tests/node/conformance.mjs), in make test.

Node is the "other language": the script verifies the signing vectors with the npm
``canonicalize`` package and node:crypto, reproduces every bucketing vector, and verifies
the signature of a command it consumes itself with kafkajs from the embedded broker.
A machine without node fails here rather than skipping: the conformance claim must not
silently disappear from CI. The Makefile installs the pinned npm packages (``npm ci``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rollwatch.settings import Settings
from rollwatch.tickets import Ticket
from tests.control.helpers import command, publish, signed

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "conformance.mjs"


def _node(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the Node conformance test needs Node 20+ (it is part of make test)")
    if not (HERE / "node_modules" / "canonicalize").is_dir() or not (HERE / "node_modules" / "kafkajs").is_dir():
        pytest.fail("tests/node/node_modules is missing: run `make tests/node/node_modules/.installed` (npm ci)")
    proc = subprocess.run(
        [node, str(SCRIPT), *args], capture_output=True, text=True, timeout=90, env={**os.environ, **(env or {})}
    )
    assert proc.returncode == 0, f"node conformance failed:\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _vector_counts() -> tuple[int, int]:
    root = HERE.parents[1] / "schemas" / "vectors"
    signing = json.loads((root / "signing.v1.json").read_text(encoding="utf-8"))
    bucketing = json.loads((root / "bucketing.v1.json").read_text(encoding="utf-8"))
    return len(signing["cases"]), len(bucketing["cases"]) * len(bucketing["percents"])


def test_node_verifies_the_signing_vectors_and_reproduces_every_bucket() -> None:
    cases, decisions = _vector_counts()
    assert _node() == {"signing_cases": cases, "bucket_decisions": decisions}


@pytest.mark.integration
async def test_node_verifies_a_live_command_it_consumed_from_the_broker(topics: Settings, ticket: Ticket) -> None:
    cmd = signed(topics, command(ticket, "disable_tools", {"ai.tools.enabled": False}))
    await publish(topics, cmd)
    secret = topics.signing_key.get_secret_value() if topics.signing_key is not None else ""
    result = _node(
        "--live",
        topics.bootstrap_servers,
        topics.topic_control,
        cmd.command_id,
        topics.signing_key_id or "",
        env={"ROLLWATCH_NODE_HMAC_SECRET": secret},
    )
    assert result["live"] == {"command_id": cmd.command_id, "workflow": ticket.workflow, "action": "disable_tools"}
