"""OFREP on the flag store, read by the stock PyPI OFREP provider (openfeature-provider-ofrep).

The provider is OpenFeature's own HTTP client for the protocol: if it reads rollwatch's
flags, reasons and metadata, so does any language's OFREP provider. Expected canary
decisions are computed here from the written bucketing rule, not by rollwatch's module.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator

import aiohttp
import pytest
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import FlagNotFoundError, InvalidContextError, TargetingKeyMissingError
from openfeature.flag_evaluation import Reason

from rollwatch.broker import free_port
from rollwatch.flagstore.http import serve
from rollwatch.flagstore.service import FlagStore
from rollwatch.settings import Settings
from rollwatch.tickets import Ticket
from tests.control.helpers import AckReader, command, publish, signed

pytestmark = pytest.mark.integration
WF = "support-summary"


@pytest.fixture
async def base_url(topics: Settings) -> AsyncIterator[str]:
    store = FlagStore(topics)
    await store.start()
    port = free_port()
    runner = await serve(store, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await store.stop()


def _on_canary(workflow: str, unit: str, percent: float) -> bool:
    n = int.from_bytes(hashlib.sha256(f"{workflow}:{unit}".encode()).digest()[:8], "big")
    return n % 10_000 < min(10_000, math.floor(percent * 100 + 0.5))


async def _apply(topics: Settings, *cmds: object) -> None:
    async with AckReader(topics) as acks:
        await publish(topics, *cmds)  # type: ignore[arg-type]
        for cmd in cmds:
            assert (await acks.wait_for(cmd.command_id, "flagstore")).status == "applied"  # type: ignore[attr-defined]


async def test_the_stock_provider_reads_values_reasons_variants_and_metadata(
    base_url: str, topics: Settings, ticket: Ticket
) -> None:
    provider = OFREPProvider(base_url)
    scope = EvaluationContext(attributes={"workflow": WF})
    before = await asyncio.to_thread(provider.resolve_string_details, "ai.route.provider", "none", scope)
    assert (before.value, before.reason) == (ticket.candidate.route, Reason.DEFAULT)  # the ticket's canary state
    assert before.flag_metadata["layer"] == "ticket" and "commandId" not in before.flag_metadata

    restore = signed(topics, command(ticket, "restore_route_and_prompt", {"ai.route.provider": ticket.control.route}))
    draft = signed(topics, command(ticket, "set_action_mode", {"ai.action.mode": "draft"}, segment="enterprise"))
    await _apply(topics, restore, draft)

    route = await asyncio.to_thread(provider.resolve_string_details, "ai.route.provider", "none", scope)
    assert route.value == ticket.control.route
    assert route.reason == Reason.TARGETING_MATCH  # a rollback changed it: not STATIC, not DEFAULT
    assert route.variant == f'"{ticket.control.route}"'
    assert route.flag_metadata["commandId"] == draft.command_id  # the last command applied to the workflow
    assert route.flag_metadata["ticket"] == ticket.ticket
    assert route.flag_metadata["ticketRevision"] == ticket.revision
    assert route.flag_metadata["layer"] == "workflow"

    enterprise = EvaluationContext(attributes={"workflow": WF, "segment": "enterprise"})
    mode = await asyncio.to_thread(provider.resolve_string_details, "ai.action.mode", "auto", enterprise)
    assert (mode.value, mode.reason, mode.variant, mode.flag_metadata["layer"]) == (
        "draft",
        Reason.TARGETING_MATCH,
        '"draft"',
        "segment",
    )
    plain = await asyncio.to_thread(provider.resolve_string_details, "ai.action.mode", "x", scope)
    assert (plain.value, plain.reason) == ("auto", Reason.DEFAULT)

    percent = await asyncio.to_thread(provider.resolve_float_details, "ai.rollout.percent", -1.0, scope)
    assert percent.value == ticket.canary.start_percent and percent.variant == repr(float(ticket.canary.start_percent))
    tools = await asyncio.to_thread(provider.resolve_boolean_details, "ai.tools.enabled", False, scope)
    tools_on = ticket.candidate.tool_schema_version is not None  # the ticket's route has tools iff it names a schema
    assert tools.value is tools_on and tools.variant == ("true" if tools_on else "false")

    for unit in ("user-1", "user-2", "user-3", "user-77", "alice"):
        user = EvaluationContext(targeting_key=unit, attributes={"workflow": WF})
        canary = await asyncio.to_thread(provider.resolve_boolean_details, "ai.rollout.canary", False, user)
        assert canary.value is _on_canary(WF, unit, ticket.canary.start_percent), unit
        assert canary.reason == Reason.SPLIT and canary.flag_metadata["bucketing"] == "sha256"

    with pytest.raises(FlagNotFoundError):
        await asyncio.to_thread(provider.resolve_string_details, "ai.nope", "d", scope)
    with pytest.raises(TargetingKeyMissingError):
        await asyncio.to_thread(provider.resolve_boolean_details, "ai.rollout.canary", False, scope)
    with pytest.raises(InvalidContextError):
        await asyncio.to_thread(provider.resolve_string_details, "ai.route.provider", "d", EvaluationContext())


async def test_bulk_evaluation_answers_304_until_a_command_changes_the_flags(
    base_url: str, topics: Settings, ticket: Ticket
) -> None:
    url = f"{base_url}/ofrep/v1/evaluate/flags"
    body = {"context": {"workflow": WF, "targetingKey": "user-1"}}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body) as resp:
            assert resp.status == 200
            etag = resp.headers["ETag"]
            first = await resp.json()
        assert {f["key"] for f in first["flags"]} == {
            "ai.route.provider", "ai.route.mode", "ai.prompt.version", "ai.tools.enabled",
            "ai.action.mode", "ai.rollout.percent", "ai.rollout.canary",
        }  # fmt: skip
        async with http.post(url, json=body, headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
        await _apply(topics, signed(topics, command(ticket, "set_route_mode", {"ai.route.mode": "async"})))
        async with http.post(url, json=body, headers={"If-None-Match": etag}) as resp:
            assert resp.status == 200 and resp.headers["ETag"] != etag
            after = {f["key"]: f for f in (await resp.json())["flags"]}
        async with http.post(url, json={"context": {"segment": "x"}}) as resp:
            assert resp.status == 400 and (await resp.json())["errorCode"] == "INVALID_CONTEXT"
        async with http.post(url, data=b"{not json") as resp:
            assert resp.status == 400 and (await resp.json())["errorCode"] == "PARSE_ERROR"
    assert after["ai.route.mode"]["value"] == "async" and after["ai.route.mode"]["reason"] == "TARGETING_MATCH"
