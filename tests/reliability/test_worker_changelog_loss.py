"""A worker that recovered its state from the changelog outlives a broker that lost its data.

Row 2e's worker never read its changelog (faust skips its consistency check while the
offset it read up to is unset), so it said nothing about this case. Here a first worker
(production engine, no ticket: everything to count) applies calls, checkpoints and is
SIGKILLed; a second worker of the same group *recovers* those engines from the changelog.
Then the embedded broker is stopped and started empty on the same port (Tansu keeps
nothing; a real cluster can lose a topic), and the topics are recreated at once, as
``rollwatch topics create`` does. Before the fix the second worker died with faust's
``ConsistencyError: ... (N > -1)`` or hung in recovery.

Asserted: the second worker stays up; it says the changelog went backwards in its log, in
``/status`` (``changelog_resets``, per partition) and in the
``rollwatch_changelog_resets_total`` metric; it counts new telemetry on top of the state
it held (nothing double counted); it writes that state back to the new changelog, so a
third worker, started after it is killed, recovers every count.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from rollwatch.broker import EmbeddedBroker
from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings
from tests.agents.harness import WorkerProcess, call, produce_events, wait_until, write_config
from tests.reliability.conftest import control_settings_for

pytestmark = pytest.mark.integration

ENGINE = "rollwatch.gates.engine:EngineFactoryImpl"
WORKFLOWS = ("cl-a", "cl-b", "cl-c")


def calls(status: dict[str, Any] | None, workflow: str) -> int:
    """Calls the engine of ``workflow`` has counted on its control route (-1: not held)."""
    if not status or workflow not in status["workflows"]:
        return -1
    routes = status["workflows"][workflow]["engine"].get("routes", {})
    return int(routes.get("route-control", {}).get("calls", 0))


def counted(worker: WorkerProcess, want: dict[str, int]) -> dict[str, Any] | None:
    worker.check_alive()
    status = worker.status()
    if (
        status
        and all(calls(status, w) == n for w, n in want.items())
        and not any(slot["unsaved"] for slot in status["workflows"].values())
    ):
        return status
    return None


async def send(settings: Settings, tag: str, per_workflow: int) -> None:
    await produce_events(
        settings,
        [[call(f"{tag}-{w}-{i}", w, arm="control") for i in range(per_workflow)] for w in WORKFLOWS],
    )


def worker(settings: Settings, tmp_path: Path, group: str, name: str) -> WorkerProcess:
    config = write_config(settings, tmp_path / "rollwatch.toml")
    return WorkerProcess(config, group, name, tmp_path / f"{name}.log", engine=ENGINE)


async def test_a_recovered_worker_survives_a_broker_that_lost_its_data(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = control_settings_for(own_broker.bootstrap_servers)
    group = f"rw-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings)
    first = worker(settings, tmp_path, group, "w-first").start()
    second = worker(settings, tmp_path, group, "w-second")
    third = worker(settings, tmp_path, group, "w-third")
    try:
        await wait_until(first.ready, what="first worker ready", timeout=40)
        await send(settings, "a", 5)
        await wait_until(lambda: counted(first, dict.fromkeys(WORKFLOWS, 5)), what="5 calls each, saved")
        first.kill()

        second.start()
        recovered = await wait_until(second.ready, what="second worker ready", timeout=40)
        # Recovered from the changelog, not re-read from the telemetry topic.
        assert {w: calls(recovered, w) for w in WORKFLOWS} == dict.fromkeys(WORKFLOWS, 5)
        assert recovered["totals"].get("events", 0) == 0, recovered["totals"]
        assert recovered["changelog_resets"] == []

        own_broker.stop()
        await asyncio.sleep(2)
        second.check_alive()
        own_broker.start()
        await ensure_topics(settings)
        await asyncio.sleep(6)  # rejoin the group on the new broker
        status = await wait_until(second.ready, what="second worker ready again", timeout=60)
        await send(settings, "b", 3)
        status = await wait_until(
            lambda: counted(second, dict.fromkeys(WORKFLOWS, 8)), what="3 more calls each", timeout=40
        )
        resets = status["changelog_resets"]
        assert resets and all(r["read_up_to"] > r["highwater"] for r in resets), resets
        assert "rollwatch_changelog_resets_total{" in second.metrics()
        assert "changelog went backwards" in second.tail(400)
        second.kill()

        third.start()
        rebuilt = await wait_until(third.ready, what="third worker ready", timeout=40)
        assert {w: calls(rebuilt, w) for w in WORKFLOWS} == dict.fromkeys(WORKFLOWS, 8)
        assert rebuilt["totals"].get("events", 0) == 0, rebuilt["totals"]
    finally:
        for process in (first, second, third):
            process.kill()
        print(f"----- second worker (last lines) -----\n{second.tail(120)}")
