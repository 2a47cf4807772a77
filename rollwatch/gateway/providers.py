"""Providers, routes and the multi-provider fallback chain (seed 2's safety net, fixed).

A provider is a plain async callable the application supplies: it receives a
:class:`ModelRequest` and returns a :class:`ModelResponse`. A route is an ordered
fallback chain of providers. Differences from the seed's ``resilient_call``:

- each provider call has its own timeout, so a hung provider cannot hold the request;
- a provider that failed is put in *cooldown* for ``cooldown_s`` and skipped meanwhile,
  so a provider in an outage is not retried (and waited on) by every request;
- only ``Exception`` is treated as a provider failure: cancellation of the request
  propagates instead of being swallowed and turned into "try the next one";
- if every provider is cooling down, the chain is tried anyway as a last resort
  rather than failing a request no provider was even asked about.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from rollwatch.gateway.errors import AllProvidersFailed, Attempt

__all__ = [
    "Accept",
    "Arm",
    "Cooldowns",
    "ModelRequest",
    "ModelResponse",
    "Provider",
    "ProviderSpec",
    "RouteSpec",
    "call_chain",
]

Arm: TypeAlias = Literal["control", "candidate", "shadow"]


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What a provider is asked: the input plus the behaviour the flags decided."""

    request_id: str
    workflow: str
    user_key: str
    input: Any
    route: str
    arm: Arm
    prompt_version: str | None
    tools: tuple[Any, ...] = ()
    read_only: bool = False
    """True when ``ai.tools.enabled`` is off: answer, but take no tool actions."""
    segment: str | None = None
    provider: str = ""
    """Filled in per attempt with the name of the provider being called."""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """A provider's answer, with what telemetry needs to judge the route."""

    output: Any
    model: str | None = None
    cost_usd: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    tool_calls: int | None = None
    schema_valid: bool | None = None
    safety_blocked: bool = False
    quality_score: float | None = None


Provider: TypeAlias = Callable[[ModelRequest], Awaitable[ModelResponse]]
Accept: TypeAlias = Callable[[ModelResponse], bool | Awaitable[bool]]
"""The seed's ``quality_check``: a response it rejects falls through to the next provider."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    call: Provider
    timeout_s: float | None = 30.0


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A route as ``ai.route.provider`` names it: providers in fallback order and its own prompt."""

    name: str
    chain: tuple[ProviderSpec, ...]
    prompt_version: str | None = None

    def __post_init__(self) -> None:
        if not self.chain:
            raise ValueError(f"route {self.name!r} has no providers")


class Cooldowns:
    """Per-provider cooldown after ``failures`` consecutive failures, shared by every route."""

    def __init__(
        self, cooldown_s: float = 30.0, failures: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cooldown_s = cooldown_s
        self.failures = failures
        self.clock = clock
        self._failed: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def available(self, name: str) -> bool:
        until = self._until.get(name)
        return until is None or self.clock() >= until

    def failed(self, name: str) -> None:
        count = self._failed.get(name, 0) + 1
        self._failed[name] = count
        if count >= self.failures:
            self._until[name] = self.clock() + self.cooldown_s

    def succeeded(self, name: str) -> None:
        self._failed.pop(name, None)
        self._until.pop(name, None)

    def cooling(self) -> dict[str, float]:
        """Providers in cooldown and the seconds left."""
        now = self.clock()
        return {name: until - now for name, until in self._until.items() if until > now}


async def _accepted(accept: Accept | None, response: ModelResponse) -> bool:
    if accept is None:
        return True
    verdict = accept(response)
    if inspect.isawaitable(verdict):
        return bool(await verdict)
    return bool(verdict)


async def _try(
    spec: ProviderSpec, request: ModelRequest, accept: Accept | None
) -> tuple[Attempt, ModelResponse | None]:
    started = time.perf_counter()

    def took() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        response = await asyncio.wait_for(spec.call(replace(request, provider=spec.name)), spec.timeout_s)
    except TimeoutError:
        return Attempt(spec.name, "timeout", f"no answer in {spec.timeout_s}s", took()), None
    except Exception as exc:  # a provider's failure, whatever its type; cancellation propagates
        return Attempt(spec.name, "error", f"{type(exc).__name__}: {exc}"[:200], took()), None
    if not await _accepted(accept, response):
        return Attempt(spec.name, "rejected", "failed the quality check", took()), None
    return Attempt(spec.name, "ok", "", took()), response


async def call_chain(
    route: RouteSpec,
    request: ModelRequest,
    cooldowns: Cooldowns,
    accept: Accept | None = None,
) -> tuple[ProviderSpec, ModelResponse, list[Attempt]]:
    """The first provider of ``route`` that answers acceptably; raises :class:`AllProvidersFailed`."""
    attempts: list[Attempt] = []
    tried = False
    for last_resort in (False, True):
        if last_resort and tried:
            break
        for spec in route.chain:
            if not last_resort and not cooldowns.available(spec.name):
                attempts.append(Attempt(spec.name, "cooling"))
                continue
            tried = True
            attempt, response = await _try(spec, request, accept)
            attempts.append(attempt)
            if response is not None:
                cooldowns.succeeded(spec.name)
                return spec, response, attempts
            cooldowns.failed(spec.name)
    raise AllProvidersFailed(route.name, attempts)
