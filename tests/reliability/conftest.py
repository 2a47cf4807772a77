"""Fixtures for the reliability suite: a broker of the test's own, which it may stop and restart.

The session broker in ``tests/conftest.py`` is shared, so a test that kills a broker
needs its own. :class:`EmbeddedBroker` keeps everything in memory: a broker restarted
on the same port is a *new, empty* broker, and the tests re-create the topics the way
an operator would with ``rollwatch topics create``.

``live_settings`` and ``live_worker`` are for tests that run a production worker process
on the session broker (see :mod:`tests.reliability.backlog`).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from rollwatch.broker import EmbeddedBroker, free_port
from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings, load_settings
from tests.agents.harness import WorkerProcess, write_config
from tests.control.helpers import wiped_redis


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker on a fixed free port that the test may stop and start again."""
    broker = EmbeddedBroker(port=free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def control_settings_for(bootstrap_servers: str) -> Settings:
    """Settings with private topic names, a fresh HMAC signing key and a private Redis prefix."""
    tag = uuid.uuid4().hex[:8]
    roles = ("telemetry", "control", "acks", "deadletter", "releases", "flags")
    settings = load_settings(
        None,
        bootstrap_servers=bootstrap_servers,
        telemetry_partitions=2,
        control_partitions=2,
        **{f"topic_{role}": f"r{tag}.{role}" for role in roles},
    )
    return settings.model_copy(
        update={
            "signing_key_id": "test-key",
            "signing_key": SecretStr(secrets.token_urlsafe(32)),
            "redis_prefix": f"rwtest:{uuid.uuid4().hex[:8]}:",
            "command_ack_deadline_s": 5.0,
        }
    )


PRODUCTION_ENGINE = "rollwatch.agents.engine_factory:production_factory"


@pytest.fixture
async def live_settings(broker: EmbeddedBroker) -> AsyncIterator[Settings]:
    """Private topics on the session broker (created), a fresh signing key and Redis prefix."""
    made = control_settings_for(broker.bootstrap_servers)
    await ensure_topics(made)
    yield made


def production_worker(settings: Settings, folder: Path, name: str = "w-live") -> WorkerProcess:
    """A worker process (not started) with the production engine: gates, judge, signing with the settings' key."""
    assert settings.signing_key is not None  # the production engine signs with the test's key
    config = write_config(settings, folder / f"{name}.toml")
    return WorkerProcess(config, f"rw-{uuid.uuid4().hex[:8]}", name, folder / f"{name}.log", engine=PRODUCTION_ENGINE)


@pytest.fixture
def live_worker(live_settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A production worker on ``live_settings``, not started; killed (and its log shown) after the test."""
    process = production_worker(live_settings, tmp_path)
    yield process
    process.kill()
    print(f"----- worker (last lines) -----\n{process.tail(80)}")


@pytest.fixture
async def loss_settings(own_broker: EmbeddedBroker) -> AsyncIterator[Settings]:
    """:func:`control_settings_for` the test's own broker; its Redis keys are deleted afterwards."""
    made = control_settings_for(own_broker.bootstrap_servers)
    async with wiped_redis(made):
        yield made
