"""A production worker process run over a telemetry backlog, and the commands it publishes.

Shared by the tests that hold a live worker to what ``rollwatch replay`` decides on the
same events (``test_worker_behind``, ``test_kinds_live``): the backlog is written to the
broker before the worker starts, the worker (production engine: gates, judge, signing with
the test's key) reads all of it, and the test compares the control topic with replay.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollwatch.commands import RollbackCommand, decode_command
from rollwatch.events import Event, encode_events
from rollwatch.ops.traffic import batches
from rollwatch.settings import Settings
from tests.agents.harness import WorkerProcess, read_topic, wait_until

__all__ = [
    "ENGINE",
    "CaughtUp",
    "Outcome",
    "applied_events",
    "catch_up",
    "consumer_lag",
    "messages_of",
    "outcome",
    "outcomes",
    "published_commands",
]

from tests.reliability.conftest import PRODUCTION_ENGINE as ENGINE

Outcome = tuple[str, str, str, dict[str, Any]]
"""(workflow, gate, action, flags) of one command."""


def outcome(command: RollbackCommand) -> Outcome:
    return command.workflow, command.reason.gate, command.action, {str(k): v for k, v in command.flags.items()}


def outcomes(commands: Sequence[RollbackCommand]) -> dict[str, Outcome]:
    """Command id -> outcome; a command id published twice fails the test."""
    got = {c.command_id: outcome(c) for c in commands}
    assert len(commands) == len(got), f"a command id was published twice: {[c.command_id for c in commands]}"
    return got


def messages_of(events: Mapping[str, Sequence[Event]], size: int = 100) -> dict[str, list[bytes]]:
    """Each workflow's events as telemetry messages (JSON arrays of ``size``), in event-time order as given."""
    return {wf: [encode_events(b) for b in batches(iter(evs), size)] for wf, evs in events.items()}


def applied_events(status: dict[str, Any] | None) -> int:
    return int(status["totals"]["events"]) if status else -1


def consumer_lag(metrics: str) -> dict[str, float]:
    return {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("rollwatch_consumer_lag{")
    }


@dataclass(frozen=True, slots=True)
class CaughtUp:
    status: dict[str, Any]
    """``/status`` once every event was applied."""
    seconds: float
    """From starting the worker to every event applied."""


async def catch_up(
    worker: WorkerProcess,
    settings: Settings,
    events: Mapping[str, Sequence[Event]],
    *,
    timeout: float = 40.0,
) -> CaughtUp:
    """Start ``worker`` on a backlog already in the broker and wait until it has caught up.

    Asserted on the way: every event applied once (totals and calls per workflow, no
    duplicate) and consumer lag 0 on the telemetry partitions. Then the wall-clock judge
    runs three more times, so a command it would add after the backlog is on the topic too
    (read it with :func:`published_commands`).
    """
    total = sum(len(evs) for evs in events.values())
    started = time.monotonic()
    worker.start()
    await wait_until(worker.ready, what="worker ready", timeout=max(timeout, 40.0))
    status = await wait_until(
        lambda: (s := worker.status()) and applied_events(s) >= total and s, what="backlog applied", timeout=timeout
    )
    seconds = time.monotonic() - started
    assert applied_events(status) == total
    for wf, evs in events.items():
        engine = status["workflows"][wf]["engine"]
        assert engine["duplicates"] == 0, wf
        assert sum(r["calls"] for r in engine["routes"].values()) == sum(1 for e in evs if e.type == "call"), wf
    lag = await wait_until(
        lambda: (found := consumer_lag(worker.metrics())) and all(v == 0 for v in found.values()) and found,
        what="consumer lag 0",
    )
    assert set(lag) <= {str(p) for p in range(settings.telemetry_partitions)}
    ticks = status["totals"]["ticks"]
    await wait_until(lambda: (s := worker.status()) and s["totals"]["ticks"] >= ticks + 3, what="judge ticks")
    return CaughtUp(status, seconds)


async def published_commands(settings: Settings, *, expect: int) -> list[RollbackCommand]:
    """The control topic, decoded: until ``expect`` commands are read, or the topic is quiet for a moment."""
    records = await read_topic(settings, settings.topic_control, expect=expect)
    return [decode_command(r.value) for r in records]
