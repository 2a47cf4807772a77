"""``rollwatch traffic`` on the embedded broker: the ticket first, then paced telemetry stamped from now."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rollwatch.events import decode_message
from rollwatch.kafka import client_options
from rollwatch.ops.traffic import batches, for_ticket, in_time_order, send_traffic
from rollwatch.settings import Settings
from rollwatch.synth import Traffic, generate
from rollwatch.tickets.load import load_ticket
from rollwatch.trust import keyring_from_settings
from rollwatch.trust.releases import open_release
from tests.ops.helpers import ROOT, ops_argv, ops_env, write_config

pytestmark = pytest.mark.integration

TICKET = ROOT / "examples" / "support-summary.ticket.yaml"


async def _read_all(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[tuple[bytes | None, bytes | None]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                out += [(m.key, m.value) for m in messages]
        return out
    finally:
        await consumer.stop()


async def test_paced_traffic_follows_the_ticket_and_the_clock(kafka_settings: Settings) -> None:
    ticket = load_ticket(TICKET)
    traffic = for_ticket(Traffic(duration_ms=120_000, calls_per_second=10, seed=3), ticket)
    before = int(time.time() * 1000)
    started = time.monotonic()
    # 120 s of event time at 240x: about half a second of wall time.
    run = await send_traffic(kafka_settings, traffic, batch_size=50, pace=240.0, ticket_raw=TICKET.read_bytes())
    elapsed = time.monotonic() - started
    assert 0.3 < elapsed < 10
    assert run.first_ts_ms is not None and before <= run.first_ts_ms <= before + 2000
    assert run.last_ts_ms is not None and run.last_ts_ms - run.first_ts_ms > 110_000

    releases = await _read_all(kafka_settings, kafka_settings.topic_releases)
    assert [key for key, _ in releases] == [b"support-summary"]
    # The ticket goes out signed, by the owner of the settings' key, with the file as written.
    release = open_release(b"support-summary", releases[0][1], keyring_from_settings(kafka_settings))
    assert (release.text, release.ticket, release.revision) == (TICKET.read_bytes(), "REL-2041", 3)
    assert release.author == kafka_settings.principal
    messages = await _read_all(kafka_settings, kafka_settings.topic_telemetry)
    assert len(messages) == run.messages and {k for k, _ in messages} == {b"support-summary"}
    events = [e for _, v in messages for e in decode_message(v or b"").events]
    assert len(events) == run.events
    assert {e.route for e in events} == {"support-summary/stable", "support-summary/candidate"}
    assert len({e.event_id for e in events}) == len(events)


def test_batches_keep_order_and_size() -> None:
    chunks = list(batches(iter(range(7)), 3))
    assert chunks == [[0, 1, 2], [3, 4, 5], [6]]


def test_ticket_publish_puts_a_valid_ticket_in_force(kafka_settings: Settings, tmp_path: Path) -> None:
    config = write_config(kafka_settings, tmp_path / "rollwatch.toml")

    def publish(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ops_argv("ticket-publish", str(path), "-c", str(config)), capture_output=True, text=True, cwd=ROOT,
            env=ops_env(), timeout=30,
        )  # fmt: skip

    done = publish(TICKET)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"REL-2041 r3 is in force for support-summary ({kafka_settings.topic_releases}[")
    refused = publish(ROOT / "examples" / "bad.ticket.yaml")
    assert refused.returncode == 2 and "bad.ticket.yaml" in refused.stderr
    releases = asyncio.run(_read_all(kafka_settings, kafka_settings.topic_releases))
    assert [key for key, _ in releases] == [b"support-summary"]
    release = open_release(b"support-summary", releases[0][1], keyring_from_settings(kafka_settings))
    assert release.text == TICKET.read_bytes()
    # Without a key there is nothing to sign with: one clear line, nothing published.
    keyless = tmp_path / "keyless.toml"
    keyless.write_text("\n".join(line for line in config.read_text().splitlines() if "signing_key" not in line))
    unsigned = subprocess.run(
        ops_argv("ticket-publish", str(TICKET), "-c", str(keyless)), capture_output=True, text=True, cwd=ROOT,
        env=ops_env(), timeout=30,
    )  # fmt: skip
    assert unsigned.returncode != 0 and "release manager's key" in unsigned.stderr
    assert "Traceback" not in unsigned.stderr
    assert len(asyncio.run(_read_all(kafka_settings, kafka_settings.topic_releases))) == 1


def test_paced_traffic_goes_out_in_event_time_order() -> None:
    # generate() yields a review (+500 ms) right after its call; sent as is, a paced batch
    # ending with a review would hold the calls before it back by up to half a second.
    events = list(generate(Traffic(regression="complaints", duration_ms=120_000, onset_ms=0, seed=5)))
    stamps = [e.ts_ms for e in events]
    assert stamps != sorted(stamps)
    ordered = list(in_time_order(iter(events)))
    assert [e.ts_ms for e in ordered] == sorted(stamps)
    assert sorted(e.event_id for e in ordered) == sorted(e.event_id for e in events)

