"""The telemetry emitter: what an application calls after each model call.

Telemetry must never make the product worse. So :meth:`TelemetryEmitter.emit` is a
plain (non-async) call that appends to an in-memory buffer and returns: it does no
I/O, never waits for the broker and never raises into the request path. A background
task batches events per workflow (the topic is keyed by workflow, and one message per
batch keeps broker round trips off the hot path) and sends a batch when it is
``max_batch`` events or ``linger_ms`` old.

Memory is bounded by ``max_buffered`` events, counting those in flight. When the
broker is slow or down the buffer fills and the overflow policy decides what goes:
``drop_oldest`` (the default: rollback decisions need recent behaviour more than old)
evicts the oldest event of the same workflow, or of the longest queue; ``drop_newest``
refuses the new event. Every lost event is counted by reason in :attr:`stats`.

A send that times out may still be delivered later by the client; events carry
``event_id`` and the worker drops duplicates, so retrying is safe. ``close()`` flushes
what it can within its timeout and counts the rest as dropped (``shutdown``).
:class:`SyncEmitter` runs the same machinery on a background thread for applications
without an event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import orjson
from aiokafka import AIOKafkaProducer

from rollwatch.errors import InvalidEventError
from rollwatch.events import MAX_BATCH, CallEvent, ComplaintEvent, Event, ReviewEvent, event_to_dict, parse_event
from rollwatch.kafka import make_producer
from rollwatch.settings import Settings

__all__ = ["EmitterStats", "OverflowPolicy", "SyncEmitter", "TelemetryEmitter"]

log = logging.getLogger(__name__)

OverflowPolicy: TypeAlias = Literal["drop_oldest", "drop_newest"]
_EVENT_TYPES = (CallEvent, ReviewEvent, ComplaintEvent)


@dataclass(frozen=True, slots=True)
class EmitterStats:
    """A snapshot of the counters; ``dropped`` is by reason (overflow, invalid, closed, shutdown)."""

    accepted: int
    sent: int
    buffered: int
    batches: int
    send_errors: int
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class TelemetryEmitter:
    """Batches telemetry per workflow to the telemetry topic; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        linger_ms: float = 50.0,
        max_batch: int = 500,
        max_buffered: int = 10_000,
        overflow: OverflowPolicy = "drop_oldest",
        send_timeout_s: float = 5.0,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH or max_buffered < max_batch:
            raise ValueError(f"need 1 <= max_batch <= {MAX_BATCH} and max_buffered >= max_batch")
        self.settings = settings
        self.linger = linger_ms / 1000
        self.max_batch = max_batch
        self.max_buffered = max_buffered
        self.overflow = overflow
        self.send_timeout = send_timeout_s
        self._lock = threading.Lock()
        self._queues: dict[str, deque[tuple[float, Any]]] = {}
        self._size = 0  # queued + in flight: the memory bound
        self._accepted = self._sent = self._batches = self._send_errors = 0
        self._dropped: dict[str, int] = {}
        self._closed = False
        self._flushing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None

    # -- the caller's side -----------------------------------------------------------------------

    def emit(self, event: Event | Mapping[str, Any]) -> bool:
        """Queue one event; False when it was dropped. Never blocks, never raises."""
        item: Any
        try:
            if isinstance(event, _EVENT_TYPES):
                workflow, item = event.workflow, event
            else:
                workflow, item = event["workflow"], dict(event)
                if type(workflow) is not str:
                    raise TypeError("workflow must be a string")
        except Exception:
            self._drop("invalid")
            return False
        wake = False
        with self._lock:
            if self._closed:
                self._dropped["closed"] = self._dropped.get("closed", 0) + 1
                return False
            queue = self._queues.get(workflow)
            if queue is None:
                queue = self._queues[workflow] = deque()
            if self._size >= self.max_buffered and not self._evict(queue):
                self._dropped["overflow"] = self._dropped.get("overflow", 0) + 1
                return False
            queue.append((time.monotonic(), item))
            self._size += 1
            self._accepted += 1
            wake = len(queue) == 1 or len(queue) == self.max_batch
        if wake:
            self._poke()
        return True

    def _evict(self, queue: deque[tuple[float, Any]]) -> bool:
        """Make room under the lock per the policy; whether there is room now."""
        if self.overflow == "drop_newest":
            return False
        victim = queue if queue else max(self._queues.values(), key=len)
        if not victim:
            return False  # everything is in flight
        victim.popleft()
        self._size -= 1
        self._dropped["overflow"] = self._dropped.get("overflow", 0) + 1
        return True

    def _drop(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + count

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        if threading.get_ident() == self._loop_thread:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wake.set)

    @property
    def stats(self) -> EmitterStats:
        with self._lock:
            return EmitterStats(
                self._accepted, self._sent, self._size, self._batches, self._send_errors, dict(self._dropped)
            )

    @property
    def dropped(self) -> int:
        with self._lock:
            return sum(self._dropped.values())

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> TelemetryEmitter:
        """Start the background sender; returns at once, even when the broker is unreachable."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="rollwatch-emitter")
            self._wake.set()
        return self

    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything accepted so far, ignoring linger; whether the buffer drained in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._flushing = True
        try:
            while self._size > 0 and self._task is not None and not self._task.done():
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                self._poke()
                await asyncio.sleep(0.005)
            return self._size == 0
        finally:
            self._flushing = False

    async def close(self, timeout: float = 5.0) -> None:
        """Flush within ``timeout``, stop, and count what could not be sent as dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._task is not None:
            await self.flush(timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with self._lock:
            if self._size:
                self._dropped["shutdown"] = self._dropped.get("shutdown", 0) + self._size
                log.warning("telemetry emitter closed with %d unsent events", self._size)
            self._queues.clear()
            self._size = 0
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), timeout=max(timeout, 0.1))
            self._producer = None

    async def __aenter__(self) -> TelemetryEmitter:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the sender ------------------------------------------------------------------------------

    def _take(self, now: float) -> tuple[list[tuple[str, list[Any]]], float | None]:
        """Batches due now, and when the next one falls due (None: nothing queued)."""
        due: list[tuple[str, list[Any]]] = []
        next_due: float | None = None
        with self._lock:
            for workflow, queue in self._queues.items():
                while queue and (len(queue) >= self.max_batch or self._flushing or now - queue[0][0] >= self.linger):
                    n = min(len(queue), self.max_batch)
                    due.append((workflow, [queue.popleft()[1] for _ in range(n)]))
                if queue:
                    at = queue[0][0] + self.linger
                    next_due = at if next_due is None else min(next_due, at)
        return due, next_due

    def _requeue(self, workflow: str, items: list[Any]) -> None:
        """Put a failed batch back in front, oldest first; the bound already counts it."""
        now = time.monotonic()
        with self._lock:
            queue = self._queues.setdefault(workflow, deque())
            queue.extendleft((now - self.linger, item) for item in reversed(items))

    def _encode(self, items: list[Any]) -> tuple[bytes | None, list[Any]]:
        """The message body and the items in it; invalid dicts are dropped here, off the caller's path."""
        kept, out = [], []
        for item in items:
            if isinstance(item, dict):
                try:
                    parse_event(item)
                except InvalidEventError as exc:
                    log.warning("telemetry emitter: dropped an invalid event: %s", exc)
                    self._discard(1, "invalid")
                    continue
                out.append(item)
            else:
                out.append(event_to_dict(item))
            kept.append(item)
        if not out:
            return None, kept
        return orjson.dumps(out[0] if len(out) == 1 else out), kept

    def _discard(self, count: int, reason: str | None = None) -> None:
        with self._lock:
            self._size -= count
            if reason:
                self._dropped[reason] = self._dropped.get(reason, 0) + count

    async def _producer_ready(self) -> bool:
        if self._producer is not None:
            return True
        producer = make_producer(self.settings, linger_ms=0, request_timeout_ms=int(self.send_timeout * 1000))
        try:
            await asyncio.wait_for(producer.start(), timeout=self.send_timeout)
        except Exception as exc:
            level = logging.DEBUG if self._send_errors else logging.WARNING  # say it once per outage
            log.log(level, "telemetry emitter: broker %s unreachable: %s", self.settings.bootstrap_servers, exc)
            with contextlib.suppress(Exception):
                await producer.stop()
            return False
        self._producer = producer
        return True

    async def _run(self) -> None:
        assert self._wake is not None
        backoff = 0.05
        while True:
            # Connect before taking events out of the buffer: queued events stay evictable
            # (drop_oldest) while the broker is unreachable; in-flight ones are not.
            if self._size and not await self._producer_ready():
                with self._lock:
                    self._send_errors += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            due, next_due = self._take(time.monotonic())
            if not due:
                self._wake.clear()
                timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            if await self._send(due):
                backoff = 0.05
                continue
            with self._lock:
                self._send_errors += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _send(self, due: list[tuple[str, list[Any]]]) -> bool:
        """Send the batches; failed ones go back in the buffer. Whether all were sent."""
        assert self._producer is not None
        pending: list[tuple[str, list[Any], asyncio.Future[Any]]] = []
        all_sent = True
        for index, (workflow, batch) in enumerate(due):
            body, items = self._encode(batch)
            if body is None:
                continue
            try:
                send = self._producer.send(self.settings.topic_telemetry, body, key=workflow.encode())
                future = await asyncio.wait_for(send, timeout=self.send_timeout)
            except Exception:
                for back_workflow, back_items in reversed([(workflow, items), *due[index + 1 :]]):
                    self._requeue(back_workflow, back_items)  # newest first, so the oldest ends in front
                all_sent = False
                break
            pending.append((workflow, items, future))
        for workflow, items, future in pending:
            try:
                await asyncio.wait_for(asyncio.shield(future), timeout=self.send_timeout)
            except Exception:
                all_sent = False
                self._requeue(workflow, items)
                continue
            self._discard(len(items))
            with self._lock:
                self._sent += len(items)
                self._batches += 1
        return all_sent


class SyncEmitter:
    """The emitter for applications without an event loop: a daemon thread runs it.

    ``emit`` is as cheap and safe as the async one; it is flushed by ``close()``, by
    leaving a ``with`` block, or at interpreter exit.
    """

    def __init__(self, settings: Settings, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rollwatch-emitter", daemon=True)
        self._thread.start()
        self._emitter = TelemetryEmitter(settings, **options)
        asyncio.run_coroutine_threadsafe(self._emitter.start(), self._loop).result(timeout=5)
        atexit.register(self.close)

    def emit(self, event: Event | Mapping[str, Any]) -> bool:
        return self._emitter.emit(event)

    @property
    def stats(self) -> EmitterStats:
        return self._emitter.stats

    def flush(self, timeout: float = 5.0) -> bool:
        future = asyncio.run_coroutine_threadsafe(self._emitter.flush(timeout), self._loop)
        try:
            return future.result(timeout=timeout + 1)
        except FutureTimeout:
            return False

    def close(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        atexit.unregister(self.close)
        future = asyncio.run_coroutine_threadsafe(self._emitter.close(timeout), self._loop)
        with contextlib.suppress(FutureTimeout):
            future.result(timeout=timeout + 2)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> SyncEmitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
