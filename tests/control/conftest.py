"""Fixtures for the control plane: signing keys made per test, topics, Redis namespaced per test."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from rollwatch.flagstore.service import FlagStore
from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings
from rollwatch.tickets import Ticket
from tests.control.helpers import example_ticket, publish_ticket, wiped_redis, write_keyring


@pytest.fixture
def control_settings(kafka_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's topics, a keyring file, a fresh HMAC signing key, and a Redis prefix nobody else uses.

    The keyring (:func:`~tests.control.helpers.write_keyring`) lists this process's key as
    ``rollwatch-worker`` (the example tickets' automation, trusted for everything) and one
    Ed25519 key per person, so tests can sign as any owner with :func:`~tests.control.helpers.by`.
    """
    secret = secrets.token_urlsafe(32)
    env = f"RW_TEST_OWN_KEY_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.setenv(env, secret)
    return kafka_settings.model_copy(
        update={
            "signing_key_id": "test-key",
            "signing_key": SecretStr(secret),
            "keyring_file": write_keyring(tmp_path / "keyring.json", "test-key", env),
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
    async with wiped_redis(control_settings) as client:
        yield client


@pytest.fixture
async def store(topics: Settings) -> AsyncIterator[FlagStore]:
    """A running flag store without Redis (test modules that need Redis define their own)."""
    flag_store = FlagStore(topics)
    await flag_store.start()
    try:
        yield flag_store
    finally:
        await flag_store.stop()
