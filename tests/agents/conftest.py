"""Fixtures of the agents tests: worker subprocesses that are always reaped."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rollwatch.settings import Settings
from tests.agents.harness import WorkerProcess, write_config

Spawn = Callable[..., WorkerProcess]


@pytest.fixture
def group() -> str:
    """A consumer group (and faust app id, hence changelog topic) private to the test."""
    return f"rw-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def spawn(kafka_settings: Settings, group: str, tmp_path: Path) -> Iterator[Spawn]:
    """Start a worker of this test's group; every worker is stopped (and its log shown on failure) after."""
    config = write_config(kafka_settings, tmp_path / "rollwatch.toml")
    started: list[WorkerProcess] = []

    def _spawn(name: str, *extra: str) -> WorkerProcess:
        worker = WorkerProcess(config, group, name, tmp_path / f"{name}.log", extra=extra)
        started.append(worker.start())
        return worker

    yield _spawn
    for worker in started:
        worker.kill()
        print(f"----- {worker.name} (last lines) -----\n{worker.tail(150)}")
