"""``rollwatch record`` on the embedded broker: the telemetry topic to the JSONL file ``replay`` reads.

An hour of synthetic traffic with a schema regression (as ``rollwatch traffic --backfill``
sends it) plus another workflow's messages go to the topic; the recording is then
replayed with the ticket. Asserted: every message of the ticket's workflow is in the file
once, byte for byte; the other workflow's are left out with ``--workflow``; ``--since``
keeps only the later messages; replay of the recording makes the same decisions as
replay of the events that were sent (the offline canary on recorded production traffic).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from rollwatch.events import decode_message, encode_events
from rollwatch.kafka import ensure_topics, make_producer
from rollwatch.ops.traffic import batches, for_ticket, in_time_order
from rollwatch.replay import replay_events, replay_file
from rollwatch.settings import Settings
from rollwatch.synth import Traffic, generate
from rollwatch.tickets.load import load_ticket
from tests.ops.helpers import ROOT, ops_env, write_config

pytestmark = pytest.mark.integration

TICKET = ROOT / "examples" / "support-summary.ticket.yaml"
SCRIPT = Path(sys.executable).parent / "rollwatch"


def record(config: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "record", str(out), "--config", str(config), *args],
        env=ops_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


async def test_record_writes_what_replay_reads(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings
    ticket = load_ticket(TICKET)
    now_ms = int(time.time() * 1000)
    traffic = for_ticket(
        Traffic(
            duration_ms=3_600_000,
            calls_per_second=2,
            regression="schema",
            onset_ms=1_200_000,
            seed=11,
            start_ms=now_ms - 3_600_000,
        ),
        ticket,
    )
    chunks = [encode_events(batch) for batch in batches(in_time_order(generate(traffic)), 200)]
    other = [b'[{"type":"review","event_id":"o-%d","ts":%d,"workflow":"other","route":"r","verdict":"approved"}]' % (
        i, now_ms // 1000
    ) for i in range(5)]  # fmt: skip
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        for chunk in chunks:
            await producer.send(settings.topic_telemetry, chunk, key=b"support-summary")
        await producer.flush()
        middle_ms = int(time.time() * 1000)
        time.sleep(0.05)
        for value in other:
            await producer.send_and_wait(settings.topic_telemetry, value, key=b"other")
    finally:
        await producer.stop()
    config = write_config(settings, tmp_path / "rollwatch.toml")

    everything = tmp_path / "all.jsonl"
    done = record(config, everything)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = everything.read_bytes().splitlines()
    assert sorted(lines) == sorted(chunks + other)
    assert f"recorded {len(lines):,} messages" in done.stdout

    ours = tmp_path / "ours.jsonl"
    done = record(config, ours, "--workflow", "support-summary")
    assert done.returncode == 0, done.stderr
    assert sorted(ours.read_bytes().splitlines()) == sorted(chunks)

    later = tmp_path / "later.jsonl"
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle_ms / 1000)) + f".{middle_ms % 1000:03d}Z"
    done = record(config, later, "--since", since)
    assert done.returncode == 0, done.stderr
    assert sorted(later.read_bytes().splitlines()) == sorted(other)

    again = record(config, ours)
    assert again.returncode == 2 and "--force" in again.stderr and len(again.stderr.splitlines()) == 1

    recorded = replay_file(ticket, ours)
    direct = replay_events(ticket, [decode_message(chunk).events for chunk in chunks])
    assert recorded.events == direct.events > 0
    assert [(e.at_ms, e.decision.command_id) for e in recorded.timeline] == [
        (e.at_ms, e.decision.command_id) for e in direct.timeline
    ]
    assert any(e.decision.gate for e in recorded.timeline), "the schema regression is acted on"
