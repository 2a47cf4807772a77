"""Worker processes and Kafka I/O for the agents tests (and the worker benchmark).

Workers run as real subprocesses (``python -m rollwatch.agents``) so that SIGKILL is a
real crash. Each one gets its own web port; the tests watch it through ``/status``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from rollwatch.broker import free_port
from rollwatch.events import CallEvent, Event, encode_events
from rollwatch.kafka import client_options, make_producer
from rollwatch.settings import Settings
from tests.releases import signed_release

__all__ = [
    "ROOT",
    "WorkerProcess",
    "call",
    "produce",
    "produce_events",
    "read_topic",
    "wait_until",
    "write_config",
]

ROOT = Path(__file__).resolve().parents[2]
FAKE_ENGINE = "tests.agents.fake_engine:factory"


def write_config(settings: Settings, path: Path) -> Path:
    """The TOML file a worker subprocess reads: the test's broker and topic names."""
    keys = (
        "bootstrap_servers",
        "topic_telemetry",
        "topic_control",
        "topic_acks",
        "topic_deadletter",
        "topic_releases",
        "topic_flags",
        "telemetry_partitions",
        "control_partitions",
        "signing_key_id",
    )
    lines = [f"{key} = {json.dumps(getattr(settings, key))}" for key in keys]
    if settings.signing_key is not None:
        lines.append(f"signing_key = {json.dumps(settings.signing_key.get_secret_value())}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def call(
    event_id: str,
    workflow: str,
    *,
    arm: str = "candidate",
    status: str = "ok",
    ts_ms: int | None = None,
) -> CallEvent:
    return CallEvent(
        event_id=event_id,
        ts_ms=ts_ms if ts_ms is not None else int(time.time() * 1000),
        workflow=workflow,
        route=f"route-{arm}",
        latency_ms=120.0,
        status=status,  # type: ignore[arg-type]
        schema_valid=True,
        safety_blocked=False,
        task_success=status == "ok",
        cost_usd=0.001,
        arm=arm,  # type: ignore[arg-type]
    )


async def produce(settings: Settings, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]]) -> None:
    """Send ``(key, value)`` pairs in order and wait for every ack.

    Values for the releases topic are ticket files: they go out signed by the settings'
    key (:func:`tests.releases.signed_release`), as ``rollwatch ticket publish`` sends them.
    """
    producer = make_producer(settings)
    await producer.start()

    def value_of(key: bytes | None, value: bytes | None) -> bytes | None:
        if topic != settings.topic_releases or value is None or key is None:
            return value
        return signed_release(settings, key.decode(), value)

    try:
        futures = [await producer.send(topic, value_of(key, value), key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_events(settings: Settings, batches: Iterable[Sequence[Event]]) -> None:
    """Each list is one telemetry message, keyed by the workflow of its first event."""
    await produce(settings, settings.topic_telemetry, ((b[0].workflow.encode(), encode_events(b)) for b in batches))


async def read_topic(settings: Settings, topic: str, *, expect: int = 0, timeout: float = 10.0) -> list[Any]:
    """Every record of ``topic`` from the beginning: until ``expect`` are read, or quiet for a moment."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
            caught_up = all([await consumer.position(tp) >= end for tp, end in ends.items()])
            if caught_up and len(records) >= expect:
                break
    finally:
        await consumer.stop()
    return records


async def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll until ``predicate()`` is truthy; its value. Fails the test (AssertionError) on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class WorkerProcess:
    """One ``python -m rollwatch.agents`` child with the fake engine and test-friendly timeouts."""

    config: Path
    group: str
    name: str
    log: Path
    web_port: int = field(default_factory=free_port)
    engine: str = FAKE_ENGINE
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        args = [
            sys.executable,
            "-m",
            "rollwatch.agents",
            "--config",
            str(self.config),
            "--group",
            self.group,
            "--name",
            self.name,
            "--engine",
            self.engine,
            "--web-port",
            str(self.web_port),
            "--data-dir",
            str(self.log.parent / f"data-{self.name}"),
            "--session-timeout",
            "4",
            "--rebalance-timeout",
            "4",
            *self.extra,
        ]
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def status(self) -> dict[str, Any] | None:
        """``/status`` as JSON, or None while the worker is not serving it."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/status", timeout=2) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=2) as response:
            text: str = response.read().decode()
            return text

    def ready(self) -> dict[str, Any] | None:
        self.check_alive()
        status = self.status()
        return status if status and status.get("ready") else None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"worker {self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait (SIGKILL if it hangs); the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode
