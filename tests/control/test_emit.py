"""The telemetry emitter: batches per workflow, bounded memory, and never in the caller's way."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from typing import Any

import pytest

from rollwatch.broker import free_port
from rollwatch.control.topics import make_consumer, partitions_of
from rollwatch.emit import SyncEmitter, TelemetryEmitter
from rollwatch.events import CallEvent, decode_message
from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings

pytestmark = pytest.mark.integration


def call(event_id: str, workflow: str = "wf-a") -> CallEvent:
    return CallEvent(
        event_id=event_id,
        ts_ms=int(time.time() * 1000),
        workflow=workflow,
        route="r",
        latency_ms=10.0,
        status="ok",
        schema_valid=True,
        safety_blocked=False,
        task_success=True,
        cost_usd=0.001,
    )


async def read_telemetry(settings: Settings, events: int, timeout: float = 15.0) -> list[tuple[str, list[str]]]:
    """(key, event ids) per message until ``events`` events were read."""
    consumer = make_consumer(settings)
    await consumer.start()
    out: list[tuple[str, list[str]]] = []
    try:
        tps = await partitions_of(consumer, settings.topic_telemetry)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while sum(len(ids) for _, ids in out) < events:
            assert time.monotonic() < deadline, f"only {out} arrived"
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    decoded = decode_message(record.value)
                    assert not decoded.rejected
                    out.append((record.key.decode(), [e.event_id for e in decoded.events]))
    finally:
        await consumer.stop()
    return out


async def test_events_arrive_batched_per_workflow(kafka_settings: Settings) -> None:
    await ensure_topics(kafka_settings)
    async with TelemetryEmitter(kafka_settings, linger_ms=20, max_batch=100) as emitter:
        for i in range(150):
            assert emitter.emit(call(f"a{i}", "wf-a"))
        for i in range(100):
            assert emitter.emit({**_wire(call(f"b{i}", "wf-b"))})
        assert await emitter.flush(timeout=10)
    messages = await read_telemetry(kafka_settings, 250)
    by_key: dict[str, list[str]] = {}
    for key, ids in messages:
        assert 1 <= len(ids) <= 100
        assert {i[0] for i in ids} == {key[-1]}  # a message holds one workflow's events
        by_key.setdefault(key, []).extend(ids)
    assert by_key["wf-a"] == [f"a{i}" for i in range(150)]
    assert by_key["wf-b"] == [f"b{i}" for i in range(100)]
    assert len(messages) < 250  # batched, not one message per event
    stats = emitter.stats
    assert (stats.accepted, stats.sent, stats.buffered, stats.dropped_total) == (250, 250, 0, 0)


async def test_a_lone_event_goes_out_after_the_linger_without_a_flush(kafka_settings: Settings) -> None:
    await ensure_topics(kafka_settings)
    async with TelemetryEmitter(kafka_settings, linger_ms=10) as emitter:
        emitter.emit(call("lone"))
        assert await read_telemetry(kafka_settings, 1) == [("wf-a", ["lone"])]


async def test_bad_input_is_counted_never_raised(kafka_settings: Settings) -> None:
    await ensure_topics(kafka_settings)
    async with TelemetryEmitter(kafka_settings) as emitter:
        assert not emitter.emit(None)  # type: ignore[arg-type]
        assert not emitter.emit({"type": "call"})  # no workflow
        assert emitter.emit({"type": "call", "workflow": "wf-a", "event_id": "x"})  # incomplete: dropped when sent
        assert emitter.emit(call("ok"))
        assert await emitter.flush(timeout=10)
        assert emitter.stats.dropped == {"invalid": 3}
        assert emitter.stats.sent == 1
    assert not emitter.emit(call("late"))
    assert emitter.stats.dropped["closed"] == 1


def _wire(event: CallEvent) -> dict[str, Any]:
    from rollwatch.events import event_to_dict

    return event_to_dict(event)


async def _handler(emitter: TelemetryEmitter | None, i: int) -> None:
    """A stand-in request handler: some work, then telemetry."""
    sum(range(200))
    if emitter is not None:
        emitter.emit(call(f"e{i}"))
    await asyncio.sleep(0)


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
async def test_with_the_broker_down_emit_stays_non_blocking_and_counts_drops(
    kafka_settings: Settings, policy: str
) -> None:
    down = kafka_settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    emitter = TelemetryEmitter(down, max_buffered=500, max_batch=100, linger_ms=5, overflow=policy)  # type: ignore[arg-type]
    await emitter.start()
    emit_ns, with_ns, without_ns = [], [], []
    for i in range(2000):
        t0 = time.perf_counter_ns()
        emitter.emit(call(f"e{i}"))
        emit_ns.append(time.perf_counter_ns() - t0)
        if i % 10 == 0:
            await asyncio.sleep(0)  # let the sender try (and fail) to connect meanwhile
    for i in range(500):
        t0 = time.perf_counter_ns()
        await _handler(None, i)
        without_ns.append(time.perf_counter_ns() - t0)
        t0 = time.perf_counter_ns()
        await _handler(emitter, i)
        with_ns.append(time.perf_counter_ns() - t0)
    stats = emitter.stats
    assert stats.buffered == 500
    assert stats.dropped == {"overflow": 2000}
    assert stats.accepted == (2500 if policy == "drop_oldest" else 500)
    assert stats.sent == 0
    # The non-blocking property itself: an emit is a buffer append, not a network wait.
    assert statistics.median(emit_ns) < 1_000_000
    assert statistics.median(with_ns) - statistics.median(without_ns) < 1_000_000
    await emitter.close(timeout=0.2)
    assert emitter.stats.dropped == {"overflow": 2000, "shutdown": 500}


async def test_the_sync_wrapper_takes_events_from_threads_and_flushes_on_close(kafka_settings: Settings) -> None:
    await ensure_topics(kafka_settings)

    def run() -> SyncEmitter:
        emitter = SyncEmitter(kafka_settings, linger_ms=20)

        def worker(n: int) -> None:
            for i in range(50):
                emitter.emit(call(f"t{n}-{i}", f"wf-{n}"))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        emitter.close()
        return emitter

    emitter = await asyncio.to_thread(run)
    assert emitter.stats.sent == 200
    messages = await read_telemetry(kafka_settings, 200)
    assert sorted(i for _, ids in messages for i in ids) == sorted(f"t{n}-{i}" for n in range(4) for i in range(50))
