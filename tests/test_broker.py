"""The embedded broker and the Kafka plumbing, over real TCP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rollwatch.broker import EmbeddedBroker, free_port, port_is_free
from rollwatch.demo import run_demo, sample_events
from rollwatch.errors import PortInUseError
from rollwatch.events import Event, decode_message, encode_events
from rollwatch.kafka import client_options, ensure_topics, make_producer
from rollwatch.settings import Settings

pytestmark = pytest.mark.integration
CLI = [str(Path(sys.executable).with_name("rollwatch"))]


async def test_events_round_trip_through_the_broker(kafka_settings: Settings) -> None:
    created = await ensure_topics(kafka_settings)
    assert sorted(created) == sorted(kafka_settings.topics().values())
    assert await ensure_topics(kafka_settings) == []

    events = sample_events(1_763_900_000_000)
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        await producer.send_and_wait(kafka_settings.topic_telemetry, encode_events(events[:1]), key=b"support-summary")
        await producer.send_and_wait(kafka_settings.topic_telemetry, encode_events(events[1:]), key=b"support-summary")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(**client_options(kafka_settings), enable_auto_commit=False)
    await consumer.start()
    got: list[Event] = []
    try:
        parts = [TopicPartition(kafka_settings.topic_telemetry, p) for p in range(kafka_settings.telemetry_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + 15
        while len(got) < len(events) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    assert record.key == b"support-summary"
                    decoded = decode_message(record.value or b"")
                    assert decoded.rejected == []
                    got.extend(decoded.events)
    finally:
        await consumer.stop()
    assert got == events  # one key, so one partition, so order is kept


def test_second_broker_on_a_taken_port_fails_clearly(broker: EmbeddedBroker) -> None:
    assert not port_is_free(broker.host, broker.port)
    with pytest.raises(PortInUseError, match=f"port {broker.port} .* already in use"):
        EmbeddedBroker(port=broker.port).start()


def test_cli_broker_exits_non_zero_when_the_port_is_taken(broker: EmbeddedBroker) -> None:
    result = subprocess.run([*CLI, "broker", "--port", str(broker.port)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"port {broker.port} on 127.0.0.1 is already in use" in result.stderr


def test_cli_broker_prints_where_it_listens_and_stops_on_ctrl_c() -> None:
    port = free_port()
    env = os.environ | {"ROLLWATCH_BROKER_PORT": str(port)}
    proc = subprocess.Popen([*CLI, "broker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"listening on 127.0.0.1:{port}" in line
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert "stopping broker" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 5
    while not port_is_free("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert port_is_free("127.0.0.1", port), "the broker child outlived the CLI"


def test_demo_round_trips_every_event() -> None:
    lines: list[str] = []
    assert run_demo(lines.append) == 0
    assert "read back 10 events:" in lines
    assert lines[-1] == "demo ok"
    assert sum("support-summary" in line for line in lines) == 10
