"""Fixtures for the control plane: signing keys made per test, topics, Redis namespaced per test."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings
from rollwatch.tickets import Ticket
from tests.control.helpers import example_ticket, publish_ticket


@pytest.fixture
def control_settings(kafka_settings: Settings) -> Settings:
    """The test's topics, a fresh HMAC signing key, and a Redis prefix nobody else uses."""
    return kafka_settings.model_copy(
        update={
            "signing_key_id": "test-key",
            "signing_key": SecretStr(secrets.token_urlsafe(32)),
            "redis_prefix": f"rwtest:{uuid.uuid4().hex[:8]}:",
            "command_ack_deadline_s": 5.0,
        }
    )


@pytest.fixture
def ticket() -> Ticket:
    return example_ticket()


@pytest.fixture
async def topics(control_settings: Settings, ticket: Ticket) -> Settings:
    """Topics created and the example ticket in force on the releases topic."""
    await ensure_topics(control_settings)
    await publish_ticket(control_settings, ticket)
    return control_settings


@pytest.fixture
async def redis_client(control_settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(control_settings.redis_url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{control_settings.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
