"""The control protocol checked from Node (tests/node/conformance.mjs), in make test.

Node is the "other language": the script verifies the signing vectors with the npm
``canonicalize`` package and node:crypto, reproduces every bucketing vector, and verifies
the signature of a command it consumes itself with kafkajs from the embedded broker, and
evaluates every flag through the OpenFeature server SDK with the stock npm OFREP provider.
A machine without node fails here rather than skipping: the conformance claim must not
silently disappear from CI. The Makefile installs the pinned npm packages (``npm ci``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rollwatch.broker import free_port
from rollwatch.flagstore.http import serve
from rollwatch.flagstore.service import FlagStore
from rollwatch.settings import Settings
from rollwatch.tickets import Ticket
from tests.control.helpers import AckReader, command, publish, signed

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "conformance.mjs"


def _node(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the Node conformance test needs Node 20+ (it is part of make test)")
    needed = ("canonicalize", "kafkajs", "@openfeature/server-sdk", "@openfeature/ofrep-provider")
    if not all((HERE / "node_modules" / name).is_dir() for name in needed):
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


@pytest.mark.integration
async def test_node_openfeature_reads_the_flag_store_through_the_stock_ofrep_provider(
    topics: Settings, ticket: Ticket
) -> None:
    store = FlagStore(topics)
    await store.start()
    port = free_port()
    runner = await serve(store, "127.0.0.1", port)
    try:
        draft = signed(topics, command(ticket, "set_action_mode", {"ai.action.mode": "draft"}, segment="enterprise"))
        async with AckReader(topics) as acks:
            await publish(topics, draft)
            assert (await acks.wait_for(draft.command_id, "flagstore")).status == "applied"
        unit = "user-1"
        result = await asyncio.to_thread(
            _node, "--ofrep", f"http://127.0.0.1:{port}", ticket.workflow, "enterprise", unit
        )
    finally:
        await runner.cleanup()
        await store.stop()
    flags = result["ofrep"]
    assert flags["ai.action.mode"]["value"] == "draft"
    assert flags["ai.action.mode"]["reason"] == "TARGETING_MATCH"
    assert flags["ai.action.mode"]["variant"] == '"draft"'
    assert flags["ai.action.mode"]["metadata"]["commandId"] == draft.command_id
    assert flags["ai.action.mode"]["metadata"]["ticketRevision"] == ticket.revision
    assert flags["ai.route.provider"]["value"] == ticket.candidate.route
    assert flags["ai.route.provider"]["reason"] == "DEFAULT"
    assert flags["ai.rollout.percent"]["value"] == ticket.canary.start_percent
    n = int.from_bytes(hashlib.sha256(f"{ticket.workflow}:{unit}".encode()).digest()[:8], "big")
    assert flags["ai.rollout.canary"]["value"] is (n % 10_000 < math.floor(ticket.canary.start_percent * 100 + 0.5))
    assert flags["ai.rollout.canary"]["reason"] == "SPLIT"
    assert flags["ai.unknown"]["value"] == "fallback" and flags["ai.unknown"]["errorCode"] == "FLAG_NOT_FOUND"
