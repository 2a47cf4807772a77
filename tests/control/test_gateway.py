"""The gateway's routing and behaviour flags, with in-process providers (no broker needed)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from rollwatch.events import CallEvent, Event
from rollwatch.gateway import (
    AllProvidersFailed,
    Cooldowns,
    FeatureDisabled,
    FlagCache,
    Gateway,
    ModelRequest,
    ModelResponse,
    ProviderSpec,
    RouteSpec,
    WorkflowRoutes,
    bucket,
    in_canary,
)
from rollwatch.tickets import Ticket
from tests.control.helpers import command

WF = "support-summary"
STABLE = "support-summary/stable"
CANDIDATE = "support-summary/candidate"


class Recorder:
    """A provider that answers with its own name and remembers what it was asked."""

    def __init__(self, name: str, *, fail: bool = False, gate: asyncio.Event | None = None) -> None:
        self.name = name
        self.fail = fail
        self.gate = gate
        self.requests: list[ModelRequest] = []

    async def __call__(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError(f"{self.name} is down")
        return ModelResponse(output=f"{self.name}:{request.prompt_version}", model=self.name, cost_usd=0.002)


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> bool:
        self.events.append(event)
        return True


def users(percent: float, inside: bool, n: int = 3) -> list[str]:
    """User keys on (or off) the canary of ``WF`` at ``percent``."""
    found = [f"user-{i}" for i in range(10_000) if in_canary(WF, f"user-{i}", percent) == inside]
    return found[:n]


@pytest.fixture
def stable() -> Recorder:
    return Recorder("stable")


@pytest.fixture
def candidate() -> Recorder:
    return Recorder("candidate")


def make_gateway(ticket: Ticket, stable: Recorder, candidate: Recorder, **options: Any) -> tuple[Gateway, FlagCache]:
    cache = FlagCache()
    cache.set_ticket(ticket)
    routes = WorkflowRoutes(
        WF,
        blue=RouteSpec(STABLE, (ProviderSpec("stable", stable),)),
        others=(RouteSpec(CANDIDATE, (ProviderSpec("candidate", candidate),)),),
        shadow=options.pop("shadow", False),
    )
    return Gateway([routes], cache, **options), cache


def apply(cache: FlagCache, ticket: Ticket, action: str, flags: dict[str, Any], segment: str | None = None) -> None:
    cache.apply(command(ticket, action, flags, segment=segment), datetime.now(UTC), 0, None)


def test_buckets_are_stable_and_a_growing_canary_only_adds_users() -> None:
    keys = [f"u{i}" for i in range(20_000)]
    assert [bucket(WF, k) for k in keys[:50]] == [bucket(WF, k) for k in keys[:50]]
    at5 = {k for k in keys if in_canary(WF, k, 5)}
    at25 = {k for k in keys if in_canary(WF, k, 25)}
    assert at5 < at25
    assert 800 <= len(at5) <= 1200  # 5% of 20,000, give or take
    assert not any(in_canary(WF, k, 0) for k in keys)
    assert all(in_canary(WF, k, 100) for k in keys)
    assert {k for k in keys if in_canary("other-workflow", k, 5)} != at5  # salted per workflow


async def test_the_canary_follows_the_ticket_and_a_rollback_restores_the_control_route(
    ticket: Ticket, stable: Recorder, candidate: Recorder
) -> None:
    gateway, cache = make_gateway(ticket, stable, candidate)
    inside, outside = users(5, True), users(5, False)
    for user in inside:
        outcome = await gateway.handle(WF, user, "hi")
        assert (outcome.decision.arm, outcome.output) == ("candidate", "candidate:support-summary-v15")
    for user in outside:
        outcome = await gateway.handle(WF, user, "hi")
        assert (outcome.decision.arm, outcome.output) == ("control", "stable:support-summary-v14")

    apply(cache, ticket, "restore_route", {"ai.route.provider": STABLE})
    routed = await gateway.handle(WF, inside[0], "hi")  # model back, prompt kept: still the candidate arm
    assert (routed.decision.arm, routed.output) == ("candidate", "stable:support-summary-v15")

    apply(cache, ticket, "restore_prompt", {"ai.prompt.version": "support-summary-v14"})
    for user in inside + outside:
        outcome = await gateway.handle(WF, user, "hi")
        assert (outcome.decision.arm, outcome.output) == ("control", "stable:support-summary-v14")


async def test_blue_green_swap_and_unknown_routes(ticket: Ticket, stable: Recorder, candidate: Recorder) -> None:
    gateway, cache = make_gateway(ticket, stable, candidate)
    apply(cache, ticket, "promote", {"ai.rollout.percent": 100.0})
    assert {(await gateway.handle(WF, u, "x")).output for u in users(5, False)} == {"candidate:support-summary-v15"}
    apply(cache, ticket, "reduce_rollout", {"ai.rollout.percent": 0.0})
    assert {(await gateway.handle(WF, u, "x")).output for u in users(5, True)} == {"stable:support-summary-v14"}
    apply(cache, ticket, "promote", {"ai.rollout.percent": 100.0})
    apply(cache, ticket, "restore_route", {"ai.route.provider": "somewhere/else"})
    outcome = await gateway.handle(WF, "anyone", "x")
    assert outcome.decision.unknown_route == "somewhere/else"
    assert outcome.output == "stable:support-summary-v14"


async def test_tools_off_gives_read_only_answers_and_segments_scope_flags(
    ticket: Ticket, stable: Recorder, candidate: Recorder
) -> None:
    gateway, cache = make_gateway(ticket, stable, candidate)
    assert gateway.decide(WF, "u").tools_enabled is False  # the ticket's routes declare no tool schema
    apply(cache, ticket, "rollback", {"ai.tools.enabled": True})
    apply(cache, ticket, "disable_tools", {"ai.tools.enabled": False}, segment="enterprise")
    user = users(5, False)[0]
    await gateway.handle(WF, user, "q", tools=["refund"], segment="enterprise")
    await gateway.handle(WF, user, "q", tools=["refund"], segment="smb")
    enterprise, smb = stable.requests
    assert (enterprise.tools, enterprise.read_only) == ((), True)
    assert (smb.tools, smb.read_only) == (("refund",), False)
    apply(cache, ticket, "rollback", {"ai.tools.enabled": True})  # workflow-wide wins over the segment
    await gateway.handle(WF, user, "q", tools=["refund"], segment="enterprise")
    assert stable.requests[-1].tools == ("refund",)


async def test_action_modes_keep_history_and_disabled_calls_no_provider(
    ticket: Ticket, stable: Recorder, candidate: Recorder
) -> None:
    gateway, cache = make_gateway(ticket, stable, candidate)
    user = users(5, False)[0]
    first = await gateway.handle(WF, user, "before the incident")
    assert first.disposition == "act"
    apply(cache, ticket, "set_action_mode", {"ai.action.mode": "draft"})
    assert (await gateway.handle(WF, user, "drafted")).disposition == "draft"
    apply(cache, ticket, "set_action_mode", {"ai.action.mode": "review"})
    reviewed = await gateway.handle(WF, user, "needs a person")
    assert reviewed.disposition == "review"
    assert [e.request_id for e in gateway.reviews.pending()] == [reviewed.request_id]
    history = gateway.history.for_user(WF, user)
    assert [e.input for e in history] == ["before the incident", "drafted", "needs a person"]
    assert [e.decision.action_mode for e in history] == ["auto", "draft", "review"]
    gateway.reviews.resolve(reviewed.request_id, "approved", "fine")
    assert gateway.reviews.pending() == []

    apply(cache, ticket, "disable_segment", {"ai.action.mode": "disabled"})
    calls = len(stable.requests)
    with pytest.raises(FeatureDisabled):
        await gateway.handle(WF, user, "blocked")
    assert len(stable.requests) == calls
    assert gateway.history.for_user(WF, user)[-1].disposition == "disabled"


async def test_async_and_batch_route_modes_return_before_serving(
    ticket: Ticket, stable: Recorder, candidate: Recorder
) -> None:
    gate = asyncio.Event()
    slow = Recorder("stable", gate=gate)
    gateway, cache = make_gateway(ticket, slow, candidate, batch_size=3, batch_linger_s=30)
    async with gateway:
        user = users(5, False)[0]
        apply(cache, ticket, "set_route_mode", {"ai.route.mode": "async"})
        deferred = await gateway.handle(WF, user, "later")
        assert deferred.disposition == "deferred" and deferred.pending is not None and not deferred.pending.done()
        gate.set()
        served = await asyncio.wait_for(deferred.pending, 5)
        assert served.output == "stable:support-summary-v14" and served.disposition == "act"

        apply(cache, ticket, "set_route_mode", {"ai.route.mode": "batch"})
        batch = [await gateway.handle(WF, user, f"job {i}") for i in range(2)]
        await asyncio.sleep(0.05)
        assert not any(o.pending.done() for o in batch if o.pending)  # waiting for a full batch
        batch.append(await gateway.handle(WF, user, "job 2"))
        done = await asyncio.wait_for(asyncio.gather(*(o.pending for o in batch if o.pending)), 5)
        assert [o.output for o in done] == ["stable:support-summary-v14"] * 3


async def test_a_shadow_call_never_delays_the_served_response(
    ticket: Ticket, stable: Recorder, candidate: Recorder
) -> None:
    release = asyncio.Event()
    blocked = Recorder("candidate", gate=release)
    compared: list[tuple[Any, Any]] = []

    def compare(request: ModelRequest, served: ModelResponse | None, shadow: ModelResponse) -> None:
        compared.append((served.output if served else None, shadow.output))

    sink = Sink()
    gateway, _ = make_gateway(ticket, stable, blocked, shadow=True, on_shadow=compare, emitter=sink)
    user = users(5, False)[0]
    # Were the shadow awaited (the seed's gather), this would wait for `release` forever.
    outcome = await asyncio.wait_for(gateway.handle(WF, user, "hi"), 5)
    assert outcome.output == "stable:support-summary-v14"
    assert compared == [] and len(blocked.requests) == 1
    assert blocked.requests[0].arm == "shadow" and blocked.requests[0].read_only
    release.set()
    for _ in range(100):
        if compared:
            break
        await asyncio.sleep(0.01)
    assert compared == [("stable:support-summary-v14", "candidate:support-summary-v15")]
    arms = [(e.arm, e.route) for e in sink.events if isinstance(e, CallEvent)]
    assert arms == [("control", STABLE), ("shadow", CANDIDATE)]
    await gateway.close()


async def test_the_fallback_chain_cools_a_failed_provider_down(ticket: Ticket) -> None:
    now = [0.0]
    down, backup = Recorder("primary", fail=True), Recorder("backup")
    cache = FlagCache()
    cache.set_ticket(ticket)
    chain = (ProviderSpec("primary", down), ProviderSpec("backup", backup))
    routes = WorkflowRoutes(WF, blue=RouteSpec(STABLE, chain), others=(RouteSpec(CANDIDATE, chain),))
    sink = Sink()
    gateway = Gateway([routes], cache, cooldowns=Cooldowns(cooldown_s=30, clock=lambda: now[0]), emitter=sink)

    first = await gateway.handle(WF, "u", "x")
    assert first.provider == "backup" and [a.outcome for a in first.attempts] == ["error", "ok"]
    second = await gateway.handle(WF, "u", "x")
    assert [a.outcome for a in second.attempts] == ["cooling", "ok"] and len(down.requests) == 1
    now[0] = 31.0
    await gateway.handle(WF, "u", "x")
    assert len(down.requests) == 2  # cooldown over: tried again

    backup.fail = True
    with pytest.raises(AllProvidersFailed) as failed:
        await gateway.handle(WF, "u", "x")
    assert [a.outcome for a in failed.value.attempts] == ["cooling", "error"]
    with pytest.raises(AllProvidersFailed) as again:
        await gateway.handle(WF, "u", "x")
    assert [a.outcome for a in again.value.attempts] == ["cooling", "cooling", "error", "error"]  # last resort
    statuses = [e.status for e in sink.events if isinstance(e, CallEvent)]
    assert statuses == ["ok", "ok", "ok", "error", "error"]


async def test_timeouts_fall_through_and_cancellation_is_not_swallowed(ticket: Ticket) -> None:
    hung, backup = Recorder("hung", gate=asyncio.Event()), Recorder("backup")
    chain = (ProviderSpec("hung", hung, timeout_s=0.05), ProviderSpec("backup", backup))
    gateway = Gateway([WorkflowRoutes(WF, blue=RouteSpec(STABLE, chain))])
    outcome = await gateway.handle(WF, "u", "x")
    assert [a.outcome for a in outcome.attempts] == ["timeout", "ok"]

    patient = Gateway(
        [
            WorkflowRoutes(
                WF, blue=RouteSpec(STABLE, (ProviderSpec("hung", hung, timeout_s=None), ProviderSpec("backup", backup)))
            )
        ]
    )
    calls = len(backup.requests)
    task = asyncio.create_task(patient.handle(WF, "u", "x"))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(backup.requests) == calls  # a cancelled request does not fall through to the next provider


async def test_a_ticket_choosing_the_seeds_md5_bucketing_routes_by_md5_user_id_mod_100(
    ticket: Ticket, stable: Recorder, candidate: Recorder
) -> None:
    seed_ticket = ticket.model_copy(update={"canary": ticket.canary.model_copy(update={"bucketing": "md5-seed"})})
    gateway, _ = make_gateway(seed_ticket, stable, candidate)
    percent = seed_ticket.canary.start_percent
    for i in range(200):
        user = f"user-{i}"
        on_canary = int(hashlib.md5(user.encode()).hexdigest(), 16) % 100 < percent  # the seed's rule, verbatim
        decision = gateway.decide(WF, user)
        assert decision.arm == ("candidate" if on_canary else "control"), user
