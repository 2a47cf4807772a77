"""OpenFeature clients read the ai.* flags through the rollwatch provider."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from rollwatch.gateway import FlagCache, in_canary
from rollwatch.gateway.openfeature import CANARY_FLAG, RollwatchProvider
from rollwatch.tickets import Ticket
from tests.control.helpers import command

WF = "support-summary"


@pytest.fixture
def cache(ticket: Ticket) -> FlagCache:
    flags = FlagCache()
    flags.set_ticket(ticket)
    return flags


@pytest.fixture
def provider(cache: FlagCache) -> Iterator[RollwatchProvider]:
    rollwatch = RollwatchProvider(cache, default_workflow=WF)
    api.set_provider(rollwatch, domain="rollwatch-test")
    yield rollwatch
    api.clear_providers()


def apply(cache: FlagCache, ticket: Ticket, action: str, flags: dict[str, Any], segment: str | None = None) -> None:
    cache.apply(command(ticket, action, flags, segment=segment), datetime.now(UTC), 0, None)


def test_flags_resolve_natively_and_follow_rollbacks(
    provider: RollwatchProvider, cache: FlagCache, ticket: Ticket
) -> None:
    client = api.get_client("rollwatch-test")
    assert client.get_string_value("ai.route.provider", "none") == "support-summary/candidate"
    assert client.get_float_value("ai.rollout.percent", -1.0) == 5.0
    assert client.get_integer_value("ai.rollout.percent", -1) == 5
    assert client.get_boolean_value("ai.tools.enabled", True) is False

    apply(cache, ticket, "restore_route_and_prompt", {"ai.route.provider": "support-summary/stable"})
    apply(cache, ticket, "set_action_mode", {"ai.action.mode": "review"}, segment="enterprise")
    assert client.get_string_value("ai.route.provider", "none") == "support-summary/stable"
    enterprise = EvaluationContext(attributes={"segment": "enterprise"})
    details = client.get_string_details("ai.action.mode", "auto", enterprise)
    assert (details.value, details.reason) == ("review", Reason.TARGETING_MATCH)
    assert client.get_string_details("ai.action.mode", "x").reason == Reason.STATIC
    everything = client.get_object_value("ai.flags", {}, enterprise)
    assert isinstance(everything, dict) and everything["ai.action.mode"] == "review"


def test_problems_return_the_default_with_an_error_code(provider: RollwatchProvider) -> None:
    client = api.get_client("rollwatch-test")
    mismatch = client.get_boolean_details("ai.route.provider", True)
    assert (mismatch.value, mismatch.error_code) == (True, ErrorCode.TYPE_MISMATCH)
    missing = client.get_string_details("ai.unknown", "d")
    assert (missing.value, missing.error_code) == ("d", ErrorCode.FLAG_NOT_FOUND)
    nowhere = RollwatchProvider(FlagCache()).resolve_string_details("ai.route.mode", "sync", None)
    assert (nowhere.value, nowhere.error_code) == ("sync", ErrorCode.INVALID_CONTEXT)
    percent_as_bool = client.get_boolean_details("ai.rollout.percent", False)
    assert percent_as_bool.error_code == ErrorCode.TYPE_MISMATCH


def test_the_canary_flag_uses_the_gateways_sticky_buckets(provider: RollwatchProvider) -> None:
    client = api.get_client("rollwatch-test")
    for user in (f"user-{i}" for i in range(200)):
        context = EvaluationContext(targeting_key=user)
        assert client.get_boolean_value(CANARY_FLAG, False, context) == in_canary(WF, user, 5)
    assert client.get_boolean_details(CANARY_FLAG, False).error_code == ErrorCode.TARGETING_KEY_MISSING


def test_a_rollback_raises_a_configuration_changed_event(
    provider: RollwatchProvider, cache: FlagCache, ticket: Ticket
) -> None:
    seen: list[EventDetails] = []
    client = api.get_client("rollwatch-test")
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, seen.append)
    apply(cache, ticket, "disable_tools", {"ai.tools.enabled": False})
    assert len(seen) == 1
    assert "ai.tools.enabled" in (seen[0].flags_changed or [])
    provider.shutdown()
    apply(cache, ticket, "reduce_rollout", {"ai.rollout.percent": 1.0})
    assert len(seen) == 1  # unsubscribed
