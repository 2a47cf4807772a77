"""The gateway: route each request by the flags in force, call providers, record, report.

:meth:`Gateway.handle` reads the local :class:`FlagCache` (no I/O), decides the route
(:mod:`~rollwatch.gateway.routing`), applies the behaviour flags and calls the route's
fallback chain. Around that:

- ``ai.action.mode`` = ``disabled`` raises :class:`FeatureDisabled` before any provider
  is called; ``draft``/``queued``/``review`` mark the outcome so the application does
  not act on it, and queue it where a person or a later job picks it up.
- ``ai.tools.enabled`` off sends no tools and marks the request read-only.
- ``ai.route.mode`` = ``async`` hands the request to background workers and returns at
  once with a future; ``batch`` collects requests and runs them together when the
  batch is full or old enough. Only ``sync`` holds the caller.
- Shadow calls (the seed's pattern 3) run as separate tasks. The seed awaited the
  shadow with ``gather``, so the user waited for the slower of two models; here the
  served response returns as soon as its own chain answers. Shadows are read-only,
  bounded in number (beyond ``max_shadows`` in flight they are skipped and counted),
  and the comparison callback gets the served response when it exists.
- One telemetry event per call (served and shadow) goes to the emitter, which never
  blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from rollwatch.events import CallEvent, Event
from rollwatch.gateway.cache import FlagCache
from rollwatch.gateway.errors import AllProvidersFailed, Attempt, FeatureDisabled, GatewayError, UnknownWorkflow
from rollwatch.gateway.history import Disposition, HistoryEntry, RequestHistory, WorkQueue, disposition_of
from rollwatch.gateway.providers import Accept, Arm, Cooldowns, ModelRequest, ModelResponse, RouteSpec, call_chain
from rollwatch.gateway.routing import RouteDecision, WorkflowRoutes, decide

__all__ = ["EventSink", "Gateway", "Outcome", "ShadowHook"]

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Anything with the emitter's ``emit`` (a :class:`~rollwatch.emit.TelemetryEmitter` or a test double)."""

    def emit(self, event: Event) -> bool: ...


ShadowHook = Callable[[ModelRequest, ModelResponse | None, ModelResponse], Awaitable[None] | None]
"""Called with the shadow request, the served response (None if serving failed) and the shadow's."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the application gets back. Act on ``output`` only when ``disposition`` is ``act``."""

    request_id: str
    decision: RouteDecision
    disposition: Disposition
    output: Any = None
    provider: str | None = None
    attempts: tuple[Attempt, ...] = ()
    pending: asyncio.Future[Outcome] | None = None
    """For ``async`` and ``batch`` route modes: resolves to the served outcome."""


_Deferred = tuple[RouteDecision, ModelRequest, HistoryEntry, "asyncio.Future[Outcome]"]


class Gateway:
    """Routes requests for the configured workflows; ``start()`` before deferred modes are used."""

    def __init__(
        self,
        routes: Iterable[WorkflowRoutes],
        cache: FlagCache | None = None,
        *,
        emitter: EventSink | None = None,
        cooldowns: Cooldowns | None = None,
        accept: Accept | None = None,
        on_shadow: ShadowHook | None = None,
        max_shadows: int = 64,
        history_size: int = 10_000,
        async_workers: int = 4,
        async_queue: int = 10_000,
        batch_size: int = 50,
        batch_linger_s: float = 1.0,
    ) -> None:
        self.routes = {r.workflow: r for r in routes}
        self.cache = cache if cache is not None else FlagCache()
        self.emitter = emitter
        self.cooldowns = cooldowns if cooldowns is not None else Cooldowns()
        self.accept = accept
        self.on_shadow = on_shadow
        self.max_shadows = max_shadows
        self.history = RequestHistory(history_size)
        self.reviews = WorkQueue(self.history)
        self.queued = WorkQueue(self.history)
        self.counts: dict[str, int] = {"served": 0, "failed": 0, "disabled": 0, "shadows": 0, "shadows_skipped": 0}
        self._async_workers = async_workers
        self._async: asyncio.Queue[_Deferred] = asyncio.Queue(async_queue)
        self._batch: list[_Deferred] = []
        self._batch_size = batch_size
        self._batch_linger = batch_linger_s
        self._batch_wake = asyncio.Event()
        self._shadows: set[asyncio.Task[None]] = set()
        self._workers: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> Gateway:
        if not self._workers:
            self._workers = [asyncio.create_task(self._async_worker()) for _ in range(self._async_workers)]
            self._workers.append(asyncio.create_task(self._batch_runner()))
        return self

    async def close(self) -> None:
        """Stop background work; deferred requests not yet served fail with :class:`GatewayError`."""
        for task in [*self._workers, *self._shadows]:
            task.cancel()
        for task in [*self._workers, *self._shadows]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        pending = self._batch + [self._async.get_nowait() for _ in range(self._async.qsize())]
        self._batch = []
        for _, _, _, future in pending:
            if not future.done():
                future.set_exception(GatewayError("the gateway closed before this request was served"))

    async def __aenter__(self) -> Gateway:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- routing ---------------------------------------------------------------------------------

    def decide(self, workflow: str, user_key: str, segment: str | None = None) -> RouteDecision:
        routes = self.routes.get(workflow)
        if routes is None:
            raise UnknownWorkflow(f"no routes configured for workflow {workflow!r}")
        ticket = self.cache.ticket(workflow)
        control_prompt = ticket.control.prompt_version if ticket is not None else None
        scheme = ticket.canary.bucketing if ticket is not None else None
        decision = decide(routes, self.cache.flags(workflow, segment), user_key, segment, control_prompt, scheme)
        if decision.unknown_route is not None:
            log.warning(
                "workflow %r: flag names route %r, unknown here; serving blue", workflow, decision.unknown_route
            )
        return decision

    async def handle(
        self,
        workflow: str,
        user_key: str,
        input: Any,
        *,
        segment: str | None = None,
        tools: Sequence[Any] = (),
        request_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Serve one request as the flags say. Raises :class:`FeatureDisabled`, :class:`AllProvidersFailed`."""
        decision = self.decide(workflow, user_key, segment)
        request = ModelRequest(
            request_id=request_id or uuid.uuid4().hex,
            workflow=workflow,
            user_key=user_key,
            input=input,
            route=decision.route.name,
            arm=decision.arm,
            prompt_version=decision.prompt_version,
            tools=tuple(tools) if decision.tools_enabled else (),
            read_only=not decision.tools_enabled,
            segment=segment,
            metadata=dict(metadata or {}),
        )
        entry = self.history.add(HistoryEntry(request.request_id, workflow, segment, user_key, input, decision))
        if decision.action_mode == "disabled":
            entry.disposition = "disabled"
            self.counts["disabled"] += 1
            raise FeatureDisabled(workflow, segment)
        if decision.route_mode in ("async", "batch"):
            return self._defer(decision, request, entry)
        return await self._serve(decision, request, entry)

    def _defer(self, decision: RouteDecision, request: ModelRequest, entry: HistoryEntry) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume_exception)
        item: _Deferred = (decision, request, entry, future)
        if decision.route_mode == "async":
            try:
                self._async.put_nowait(item)
            except asyncio.QueueFull:
                raise GatewayError("the async queue is full; retry later") from None
        else:
            self._batch.append(item)
            if len(self._batch) >= self._batch_size:
                self._batch_wake.set()
        return Outcome(request.request_id, decision, "deferred", pending=future)

    async def _serve(self, decision: RouteDecision, request: ModelRequest, entry: HistoryEntry) -> Outcome:
        served = self._start_shadow(decision, request)
        started = time.perf_counter()
        try:
            spec, response, attempts = await call_chain(decision.route, request, self.cooldowns, self.accept)
        except BaseException as exc:  # failed or cancelled: the shadow compares against nothing
            if served is not None:
                served.set_result(None)
            if isinstance(exc, AllProvidersFailed):
                self.counts["failed"] += 1
                entry.disposition, entry.error = "failed", str(exc)
                timeouts = exc.attempts and all(a.outcome in ("timeout", "cooling") for a in exc.attempts)
                status = "timeout" if timeouts else "error"
                self._telemetry(request, decision.route.name, decision.arm, started, status, None, None)
            raise
        if served is not None:
            served.set_result(response)
        self.counts["served"] += 1
        self._telemetry(request, decision.route.name, decision.arm, started, "ok", response, spec.name)
        entry.disposition = disposition_of(decision.action_mode)
        entry.output, entry.provider = response.output, spec.name
        if entry.disposition == "review":
            self.reviews.add(entry)
        elif entry.disposition == "queued":
            self.queued.add(entry)
        return Outcome(request.request_id, decision, entry.disposition, response.output, spec.name, tuple(attempts))

    # -- shadows ---------------------------------------------------------------------------------

    def _start_shadow(
        self, decision: RouteDecision, request: ModelRequest
    ) -> asyncio.Future[ModelResponse | None] | None:
        if decision.shadow is None:
            return None
        if len(self._shadows) >= self.max_shadows:
            self.counts["shadows_skipped"] += 1
            return None
        route, prompt = decision.shadow
        shadow_request = replace(
            request,
            request_id=f"{request.request_id}:shadow",
            route=route.name,
            arm="shadow",
            prompt_version=prompt,
            tools=(),
            read_only=True,  # a shadow must never act: its output is only compared
        )
        served: asyncio.Future[ModelResponse | None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._shadow(shadow_request, route, served))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)
        self.counts["shadows"] += 1
        return served

    async def _shadow(
        self, request: ModelRequest, route: RouteSpec, served: asyncio.Future[ModelResponse | None]
    ) -> None:
        started = time.perf_counter()
        try:
            spec, response, _ = await call_chain(route, request, self.cooldowns, self.accept)
        except AllProvidersFailed:
            self._telemetry(request, route.name, "shadow", started, "error", None, None)
            return
        self._telemetry(request, route.name, "shadow", started, "ok", response, spec.name)
        if self.on_shadow is None:
            return
        try:
            result = self.on_shadow(request, await served, response)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("shadow comparison hook failed for %s", request.request_id)

    # -- deferred modes --------------------------------------------------------------------------

    async def _run_deferred(self, item: _Deferred) -> None:
        decision, request, entry, future = item
        try:
            outcome = await self._serve(decision, request, entry)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(outcome)

    async def _async_worker(self) -> None:
        while True:
            item = await self._async.get()
            await self._run_deferred(item)

    async def _batch_runner(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._batch_wake.wait(), self._batch_linger)
            self._batch_wake.clear()
            batch, self._batch = self._batch, []
            if batch:
                await asyncio.gather(*(self._run_deferred(item) for item in batch))

    # -- telemetry -------------------------------------------------------------------------------

    def _telemetry(
        self,
        request: ModelRequest,
        route: str,
        arm: Arm,
        started: float,
        status: str,
        response: ModelResponse | None,
        provider: str | None,
    ) -> None:
        if self.emitter is None:
            return
        self.emitter.emit(
            CallEvent(
                event_id=request.request_id,
                ts_ms=int(time.time() * 1000),
                workflow=request.workflow,
                route=route,
                latency_ms=(time.perf_counter() - started) * 1000,
                status=status,  # type: ignore[arg-type]
                schema_valid=response.schema_valid if response else None,
                safety_blocked=response.safety_blocked if response else False,
                task_success=None,
                cost_usd=max(0.0, response.cost_usd) if response else 0.0,
                arm=arm,
                segment=request.segment,
                provider=provider,
                model=response.model if response else None,
                prompt_version=request.prompt_version,
                input_tokens=response.input_tokens if response else None,
                output_tokens=response.output_tokens if response else None,
                tool_calls=response.tool_calls if response else None,
                quality_score=response.quality_score if response else None,
            )
        )


def _consume_exception(future: asyncio.Future[Outcome]) -> None:
    """Mark a deferred failure as seen: the application may never await the future."""
    if not future.cancelled():
        future.exception()
