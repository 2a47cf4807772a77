"""A running worker process outlives a broker restart and keeps counting new telemetry.

The worker (``python -m rollwatch.agents``, the fake engine of ``tests/agents``) is
neither restarted nor told. The broker that comes back is a new, empty one (in-memory
storage), so the test re-creates the rollwatch topics; the worker's own changelog topic
is gone too, which a persistent Kafka would have kept. Asserted: the worker stays up
and applies events published after the restart, on top of the state it held.

Result on 2026-11-23: passes (3 runs of 3). It failed until the worker learned to forget
offsets of a log that came back shorter and to reread a shortened releases log
(``rollwatch/agents``); Tansu answers a fetch past the end with nothing rather than
OFFSET_OUT_OF_RANGE, so a stale position would otherwise wait forever.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollwatch.broker import EmbeddedBroker
from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings
from tests.agents.fake_engine import ticket
from tests.agents.harness import WorkerProcess, call, produce, produce_events, wait_until, write_config
from tests.reliability.conftest import control_settings_for

pytestmark = pytest.mark.integration


def errors(status: dict[str, Any] | None, workflow: str) -> int:
    if not status or workflow not in status["workflows"]:
        return -1
    return int(status["workflows"][workflow]["engine"]["counts"].get("candidate", {}).get("errors", 0))


@pytest.fixture
def worker_settings(own_broker: EmbeddedBroker) -> Settings:
    return control_settings_for(own_broker.bootstrap_servers)


@pytest.fixture
def worker(worker_settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    config = write_config(worker_settings, tmp_path / "rollwatch.toml")
    process = WorkerProcess(config, f"rw-{uuid.uuid4().hex[:8]}", "w-restart", tmp_path / "w.log")
    yield process
    process.kill()
    print(f"----- worker (last lines) -----\n{process.tail(150)}")


async def test_a_worker_applies_new_telemetry_after_the_broker_restarts(
    own_broker: EmbeddedBroker, worker_settings: Settings, worker: WorkerProcess
) -> None:
    settings = worker_settings
    await ensure_topics(settings)
    await produce(settings, settings.topic_releases, [(b"wf", ticket("rel-r", 1, max_candidate_errors=100))])
    worker.start()
    await wait_until(worker.ready, what="worker ready", timeout=40)
    await produce_events(settings, [[call(f"a{i}", "wf", status="error")] for i in range(3)])
    await wait_until(lambda: errors(worker.status(), "wf") == 3, what="3 errors applied")

    own_broker.stop()
    await asyncio.sleep(3)
    worker.check_alive()
    own_broker.start()  # the same port
    await ensure_topics(settings)
    await produce(settings, settings.topic_releases, [(b"wf", ticket("rel-r", 1, max_candidate_errors=100))])
    await asyncio.sleep(8)  # give it time to rejoin the group on the new broker
    await wait_until(worker.ready, what="worker ready again", timeout=40)
    await produce_events(settings, [[call(f"b{i}", "wf", status="error")] for i in range(4)])
    await wait_until(lambda: errors(worker.status(), "wf") >= 7, what="4 more errors after the restart", timeout=25)
    worker.check_alive()
    assert errors(worker.status(), "wf") == 7
