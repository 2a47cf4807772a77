"""The compose demo's traffic writes telemetry only: with ``--no-publish-ticket`` (what the
``traffic`` service runs, since its Kafka user may not write the releases topic) nothing
reaches the releases topic, while the default still puts the ticket in force first.

Runs ``rollwatch traffic`` as a subprocess against the embedded broker and counts what
landed on each topic.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from rollwatch.control.topics import make_consumer, partitions_of
from rollwatch.settings import Settings
from tests.ops.helpers import ROOT, ops_argv, ops_env, write_config

TICKET = ROOT / "examples" / "support-summary.ticket.yaml"


async def _records(settings: Settings, topic: str) -> int:
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topic)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        await consumer.stop()


def _traffic(config: Path, *flags: str) -> None:
    argv = ops_argv(
        "traffic", "--ticket", str(TICKET), *flags, "--backfill", "--duration", "2m", "--rate", "2", "-c", str(config)
    )
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=ops_env(), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_publish_ticket_sends_telemetry_only(kafka_settings: Settings, tmp_path: Path) -> None:
    config = write_config(kafka_settings, tmp_path / "rollwatch.toml")
    _traffic(config, "--no-publish-ticket")
    assert asyncio.run(_records(kafka_settings, kafka_settings.topic_releases)) == 0
    sent = asyncio.run(_records(kafka_settings, kafka_settings.topic_telemetry))
    assert sent > 0
    # The default publishes the ticket first: one record on the releases topic.
    _traffic(config)
    assert asyncio.run(_records(kafka_settings, kafka_settings.topic_releases)) == 1
    assert asyncio.run(_records(kafka_settings, kafka_settings.topic_telemetry)) > sent
