"""The emitter in the caller's request path: what ``emit()`` costs with the broker up and down.

Three runs of the same stand-in request handler (a little CPU work, then telemetry):
without an emitter, with an emitter on a live embedded broker, and with an emitter
pointed at a closed port (the broker down). For each, the per-call time of ``emit()``
and of the whole handler, p50/p99/max, plus what the emitter sent and dropped. The
point: with the broker down the handler's latency does not move, and the loss is
counted rather than silent. (The "broker up" handler tail includes the sender's own
work: it shares the event loop, and runs when a request yields.)
"""

from __future__ import annotations

import asyncio
import logging
import time

from rollwatch.broker import EmbeddedBroker, free_port
from rollwatch.emit import TelemetryEmitter
from rollwatch.events import CallEvent
from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings, load_settings

REQUESTS = 20_000


def event(i: int) -> CallEvent:
    return CallEvent(
        event_id=f"evt-{i:09d}",
        ts_ms=int(time.time() * 1000),
        workflow=f"workflow-{i % 4}",
        route="support-summary/stable",
        latency_ms=412.0,
        status="ok",
        schema_valid=True,
        safety_blocked=False,
        task_success=True,
        cost_usd=0.0012,
        arm="control",
    )


def q(values: list[int], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] / 1000


async def handler_run(emitter: TelemetryEmitter | None) -> tuple[list[int], list[int]]:
    """Per request: (ns in emit, ns in the whole handler)."""
    emit_ns: list[int] = []
    total_ns: list[int] = []
    for i in range(REQUESTS):
        begin = time.perf_counter_ns()
        sum(range(300))  # the request's own work
        if emitter is not None:
            record = event(i)
            t0 = time.perf_counter_ns()
            emitter.emit(record)
            emit_ns.append(time.perf_counter_ns() - t0)
        await asyncio.sleep(0)  # the request yields to the loop, as a real one does
        total_ns.append(time.perf_counter_ns() - begin)
    return emit_ns, total_ns


def row(name: str, emit_ns: list[int], total_ns: list[int], extra: str) -> None:
    emit = f"{q(emit_ns, 0.5):6.2f} {q(emit_ns, 0.99):7.2f} {max(emit_ns) / 1000:8.1f}" if emit_ns else " " * 23
    print(f"{name:<14} {emit}   {q(total_ns, 0.5):6.2f} {q(total_ns, 0.99):7.2f} {max(total_ns) / 1000:8.1f}   {extra}")


async def run(settings: Settings) -> None:
    await ensure_topics(settings)
    print(f"{REQUESTS:,} requests; microseconds per request")
    print(f"{'':<14} {'emit() p50':>6} {'p99':>7} {'max':>8}   {'handler p50':>6} {'p99':>7} {'max':>8}")
    _, base = await handler_run(None)
    row("no emitter", [], base, "")

    async with TelemetryEmitter(settings, linger_ms=20, max_batch=500) as live:
        emit_ns, total_ns = await handler_run(live)
        started = time.perf_counter()
        await live.flush(timeout=30)
        drain = time.perf_counter() - started
    stats = live.stats
    row("broker up", emit_ns, total_ns, f"sent {stats.sent:,} in {stats.batches} batches, drained in {drain:.2f}s")

    down = settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    dead = TelemetryEmitter(down, max_buffered=5_000, linger_ms=20)
    await dead.start()
    emit_ns, total_ns = await handler_run(dead)
    stats = dead.stats
    await dead.close(timeout=0.1)
    row("broker down", emit_ns, total_ns, f"buffered {stats.buffered:,}, dropped {stats.dropped} (bound 5,000)")
    print(f"after close: dropped {dead.stats.dropped}")


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)  # the broker-down run would print every reconnect attempt
    with EmbeddedBroker(port=free_port()) as broker:
        asyncio.run(run(load_settings(None, bootstrap_servers=broker.bootstrap_servers)))


if __name__ == "__main__":
    main()
