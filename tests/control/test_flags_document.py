"""The flags topic alone tells a consumer every flag in force (schemas/flags-document.v1.json)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from rollwatch.commands import FLAG_NAMES
from rollwatch.control.topics import make_consumer, partitions_of, read_to_end
from rollwatch.flagstore.service import FlagStore
from rollwatch.settings import Settings
from rollwatch.tickets import Ticket
from rollwatch.trust import keyring_from_settings, verify_document
from tests.conftest import schema_validator
from tests.control.helpers import AckReader, command, publish, signed

pytestmark = pytest.mark.integration

SCHEMA = schema_validator("flags-document.v1.json")



async def _documents(settings: Settings) -> list[dict[str, Any]]:
    consumer = make_consumer(settings)
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        tps = await partitions_of(consumer, settings.topic_flags)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        await read_to_end(consumer, tps, lambda r: found.append(orjson.loads(r.value)))
    finally:
        await consumer.stop()
    return found


async def test_a_ticket_alone_publishes_the_six_flags_in_force(
    store: FlagStore, topics: Settings, ticket: Ticket
) -> None:
    docs: list[dict[str, Any]] = []
    for _ in range(100):
        docs = await _documents(topics)
        if docs:
            break
        await asyncio.sleep(0.1)
    assert docs, "no flags document after the ticket was published"
    doc = docs[-1]
    SCHEMA.validate(doc)
    verify_document(doc, keyring_from_settings(topics), "flags")
    assert set(doc["in_force"]["flags"]) == set(FLAG_NAMES)
    assert doc["in_force"]["flags"]["ai.route.provider"] == ticket.candidate.route
    assert doc["in_force"]["flags"]["ai.rollout.percent"] == ticket.canary.start_percent
    assert doc["ticket"] == {"ticket": ticket.ticket, "revision": ticket.revision, "bucketing": "sha256"}
    assert doc["version"] == 0 and doc["flags"] == {}


async def test_after_a_segment_command_every_scope_has_all_six_flags(
    store: FlagStore, topics: Settings, ticket: Ticket
) -> None:
    draft = signed(topics, command(ticket, "set_action_mode", {"ai.action.mode": "draft"}, segment="enterprise"))
    async with AckReader(topics) as acks:
        await publish(topics, draft)
        assert (await acks.wait_for(draft.command_id, "flagstore")).status == "applied"
    doc = (await _documents(topics))[-1]
    SCHEMA.validate(doc)
    verify_document(doc, keyring_from_settings(topics), "flags")
    assert doc["last_command_id"] == draft.command_id
    enterprise = doc["in_force"]["segments"]["enterprise"]
    assert set(enterprise) == set(FLAG_NAMES)
    assert enterprise["ai.action.mode"] == "draft"
    assert doc["in_force"]["flags"]["ai.action.mode"] == "auto"
    assert (
        enterprise["ai.prompt.version"]
        == doc["in_force"]["flags"]["ai.prompt.version"]
        == ticket.candidate.prompt_version
    )
    assert doc["segments"] == {"enterprise": {"ai.action.mode": "draft"}}  # the command layer, as before
