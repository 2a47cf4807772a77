"""Fixtures for the reliability suite: a broker of the test's own, which it may stop and restart.

The session broker in ``tests/conftest.py`` is shared, so a test that kills a broker
needs its own. :class:`EmbeddedBroker` keeps everything in memory: a broker restarted
on the same port is a *new, empty* broker, and the tests re-create the topics the way
an operator would with ``rollwatch topics create``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from rollwatch.broker import EmbeddedBroker, free_port
from rollwatch.settings import Settings, load_settings


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


@pytest.fixture
async def loss_settings(own_broker: EmbeddedBroker) -> AsyncIterator[Settings]:
    """:func:`control_settings_for` the test's own broker; its Redis keys are deleted afterwards."""
    made = control_settings_for(own_broker.bootstrap_servers)
    yield made
    client = Redis.from_url(made.redis_url)
    keys = [key async for key in client.scan_iter(match=f"{made.redis_prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
