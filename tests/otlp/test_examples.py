"""The two ways in of the README run as written: the emitter's example and the GenAI span example."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from rollwatch.events import CallEvent, decode_message
from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings
from tests.agents.harness import read_topic
from tests.conftest import ROOT


def run(script: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, f"examples/{script}"],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)} | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_span_example_prints_the_call_its_sdk_span_becomes() -> None:
    [line] = run("otlp_genai_span.py").splitlines()
    call = orjson.loads(line)
    assert call["workflow"] == "support-summary"  # service.name
    assert call["route"] == "support-summary/candidate"  # the ticket's route of claude-sonnet-4-5
    assert call["cost_usd"] == pytest.approx((1200 * 3.0 + 300 * 15.0) / 1e6)
    assert (call["schema_valid"], call["task_success"], call["status"], call["arm"]) == (True, True, "ok", "candidate")
    assert call["latency_ms"] >= 20
    assert call["event_id"] == f"{call['trace_id']}-{call['event_id'].split('-')[1]}" and len(call["trace_id"]) == 32


@pytest.mark.integration
async def test_the_emitter_example_publishes_its_call(kafka_settings: Settings) -> None:
    await ensure_topics(kafka_settings)
    env = {
        "ROLLWATCH_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "ROLLWATCH_TOPIC_TELEMETRY": kafka_settings.topic_telemetry,
    }
    run("emit_a_call.py", env)
    [record] = await read_topic(kafka_settings, kafka_settings.topic_telemetry, expect=1)
    decoded = decode_message(record.value)
    assert not decoded.rejected
    [event] = decoded.events
    assert isinstance(event, CallEvent) and record.key == b"support-summary"
    assert (event.route, event.cost_usd, event.input_tokens) == ("support-summary/candidate", 0.0081, 1200)
