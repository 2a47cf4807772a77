"""Throughput, state size and query cost of the streaming core, in one run (~30-60 s).

    python bench/bench_streams.py               # everything
    python bench/bench_streams.py --replay-mix  # the apply_many line and the dedup memory only (~20 s)

Prints the CPU µs per event of ``WorkflowState.apply_many`` on the replay mix (what the
worker and ``rollwatch replay`` run; target <= 2.5 µs), the live bytes per id of a full
dedup ring against the BLAKE2b set it replaced, updates/s on one core for a RouteState
and a WorkflowState fed call events (windows and sketches alone, then with drift
detectors fed per closed minute and per event), the serialized bytes of a route with
every window full, the live memory of such a route, and what the gates' queries cost.
Targets: 200k updates/s, 32 KB a route.
"""

from __future__ import annotations

import gc
import random
import sys
import time
import tracemalloc
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from hashlib import blake2b
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ddsketch import DDSketch

from rollwatch.events import CallEvent, ComplaintEvent, Event, ReviewEvent
from rollwatch.streams import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    DedupRing,
    DriftSpec,
    QuantileSketch,
    RouteState,
    StreamsConfig,
    WorkflowState,
)
from rollwatch.streams.codec import Writer
from rollwatch.synth import Traffic, generate

TARGET_RATE = 200_000
TARGET_BYTES = 32 * 1024
T0 = 1_699_984_800_000
LATENESS = StreamsConfig().allowed_lateness_ms


def _calls(n: int, start_ms: int, step_ms: float, seed: int, route: str = "r1") -> list[CallEvent]:
    """Realistic call events: lognormal latencies, a few % errors/blocks/invalid, 3-step tasks."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = start_ms + int(i * step_ms) - (rng.randint(0, 20_000) if rng.random() < 0.05 else 0)
        roll = rng.random()
        out.append(
            CallEvent(
                event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                ts_ms=ts,
                workflow="wf",
                route=route,
                latency_ms=rng.lognormvariate(6.0, 0.6),
                status="ok" if roll > 0.03 else ("error" if roll > 0.01 else "timeout"),
                schema_valid=None if i % 4 == 0 else rng.random() > 0.02,
                safety_blocked=rng.random() < 0.004,
                task_success=None if i % 3 else rng.random() > 0.1,
                cost_usd=round(rng.uniform(0.0005, 0.02), 6),
                trace_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                quality_score=round(rng.random(), 3) if i % 2 else None,
            )
        )
    return out


def _side_events(start_ms: int, end_ms: int, every_ms: int, seed: int) -> list[Event]:
    """Reviews and complaints sprinkled over a span, enough to fill their windows and evidence."""
    rng = random.Random(seed)
    out: list[Event] = []
    for k, ts in enumerate(range(start_ms, end_ms, every_ms)):
        out.append(
            ReviewEvent(
                event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                ts_ms=ts,
                workflow="wf",
                route="r1",
                verdict="rejected" if rng.random() < 0.1 else "approved",
                trace_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                call_event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            )
        )
        if k % 10 == 0:
            out.append(
                ComplaintEvent(
                    event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    ts_ms=ts + 1,
                    workflow="wf",
                    route="r1",
                    confirmed=rng.random() < 0.7,
                    trace_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                    call_event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    sample="The assistant quoted the wrong refund amount and then refused to correct it " * 3,
                )
            )
    return out


def _feed_route(route: RouteState, events: Sequence[Event]) -> float:
    """Seconds to apply the events with a workflow-style watermark (max ts - lateness)."""
    apply = route.apply
    max_ts = 0
    start = time.perf_counter()
    for event in events:
        ts = event.ts_ms
        max_ts = max(max_ts, ts)
        apply(event, max_ts - LATENESS)
    return time.perf_counter() - start


def _route_run(config: StreamsConfig, events: Sequence[Event]) -> Callable[[], Callable[[], float]]:
    return lambda: lambda: _feed_route(RouteState("wf", "r1", config), events)


def _best_rate(make: Callable[[], Callable[[], float]], n: int, repeats: int = 3) -> float:
    best = min(make()() for _ in range(repeats))
    return n / best


def _report_rate(name: str, rate: float, target: float | None = TARGET_RATE) -> None:
    ratio = f"  ({rate / target:.2f}x target {target / 1000:.0f}k/s)" if target else ""
    print(f"  {name:<58} {rate / 1000:8.0f}k updates/s{ratio}")


def throughput() -> None:
    print("Throughput, one core (best of 3 runs, 200k call events over ~1.2 days, 5% out of order)")
    events = _calls(200_000, T0, 500.0, seed=1)
    n = len(events)
    gc.collect()
    no_drift = StreamsConfig(drift=DriftSpec(metrics=()))
    bucket_drift = StreamsConfig()
    event_drift = StreamsConfig(drift=DriftSpec(feed="event"))
    for name, config in (
        ("RouteState, windows + sketches (no drift)", no_drift),
        ("RouteState + ADWIN x3 fed per closed minute (default)", bucket_drift),
        ("RouteState + ADWIN x3 fed per event", event_drift),
    ):
        _report_rate(name, _best_rate(_route_run(config, events), n))

    def workflow_run(config: StreamsConfig) -> Callable[[], float]:
        def run() -> float:
            state = WorkflowState("wf", config)
            apply = state.apply
            start = time.perf_counter()
            for event in events:
                apply(event)
            return time.perf_counter() - start

        return run

    _report_rate("WorkflowState (+ dedup by 60-bit xxh3 key), no drift", _best_rate(lambda: workflow_run(no_drift), n))
    _report_rate("WorkflowState, default config (ADWIN per minute)", _best_rate(lambda: workflow_run(bucket_drift), n))

    latencies = [e.latency_ms for e in events[:100_000]]
    ours = QuantileSketch(0.01)
    theirs = DDSketch(0.01)
    start = time.perf_counter()
    for value in latencies:
        ours.add(value)
    ours_rate = len(latencies) / (time.perf_counter() - start)
    start = time.perf_counter()
    for value in latencies:
        theirs.add(value)
    theirs_rate = len(latencies) / (time.perf_counter() - start)
    print(
        f"  sketch add alone: QuantileSketch {ours_rate / 1e6:.2f}M/s, ddsketch.DDSketch {theirs_rate / 1e6:.2f}M/s "
        f"(same LogarithmicMapping, 1% accuracy)"
    )


def _replay_mix(n: int) -> list[Event]:
    """The replay benchmark's traffic: 2/3 calls (arm, trace id, quality set), 1/3 reviews, a few complaints."""
    traffic = Traffic(regression="complaints", calls_per_second=40, duration_ms=int(n / 1.5 / 40 * 1000), seed=7)
    events = list(generate(traffic))
    return events[:n]


def replay_mix(n: int = 300_000, batch: int = 1000) -> None:
    """µs per event of ``WorkflowState.apply_many`` on the replay mix, in engine-sized batches."""
    events = _replay_mix(n)
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    config = StreamsConfig()
    calls = sum(type(e) is CallEvent for e in events)
    reviews = sum(type(e) is ReviewEvent for e in events)

    def run() -> float:
        state = WorkflowState(events[0].workflow, config)
        apply_many = state.apply_many
        gc.collect()
        start = time.process_time()  # CPU time: a busy shared machine inflates it less than wall time
        for chunk in batches:
            apply_many(chunk)
        return time.process_time() - start

    best = min(run() for _ in range(5))
    print(
        f"\nReplay mix: {len(events)} events ({calls} calls, {reviews} reviews, "
        f"{len(events) - calls - reviews} complaints), one workflow, two routes, batches of {batch}"
    )
    print(f"  WorkflowState.apply_many, default config (CPU) {best / len(events) * 1e6:8.2f} µs/event (best of 5)")


def _traced(build: Callable[[], object]) -> int:
    """Bytes allocated (and still held) by ``build()``, as tracemalloc sees them."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return after - before


def dedup_memory() -> None:
    """Live bytes per remembered id of a full, churning ring, against the BLAKE2b set + deque it replaced."""
    size = StreamsConfig().dedup_ids
    rng = random.Random(9)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(3 * size)]

    def ring() -> DedupRing:
        built = DedupRing(size)
        for event_id in ids:
            built.check_and_add(event_id)
        return built

    def blake2b_set() -> tuple[set[bytes], deque[bytes]]:
        seen: set[bytes] = set()
        order: deque[bytes] = deque()
        for event_id in ids:
            key = blake2b(event_id.encode(), digest_size=8).digest()
            if key not in seen:
                if len(order) == size:
                    seen.discard(order.popleft())
                order.append(key)
                seen.add(key)
        return seen, order

    ours = _traced(ring) / size
    before = _traced(blake2b_set) / size
    print(
        f"\nDedup ring of {size} ids, full and churning ({3 * size} UUID ids fed): {ours:.0f} bytes per id live "
        f"(BLAKE2b digests in a set + deque: {before:.0f}, {ours / before:.2f}x); "
        f"10,000 workflows: {ours * size * 10_000 / 2**30:.2f} GiB"
    )


def _full_route(week: Sequence[Event], burst_per_s: float) -> tuple[RouteState, int]:
    """A route after 7 days + 2 hours of traffic: every count, time and evidence window full.

    ``week`` is the traffic of the first 7 days; the last 2 hours (the whole fine ring)
    run at ``burst_per_s`` so minute sketches are as dense as a busy route makes them.
    """
    burst_start = T0 + 7 * DAY_MS
    fast = _calls(int(2 * 3600 * burst_per_s), burst_start, 1000 / burst_per_s, seed=3)
    side = _side_events(burst_start, burst_start + 2 * HOUR_MS, 5 * MINUTE_MS, seed=4)
    events: list[Event] = [*week, *fast, *side]
    events.sort(key=lambda e: e.ts_ms)
    route = RouteState("wf", "r1")
    _feed_route(route, events)
    return route, len(events)


def _week(calls_per_s: float) -> list[Event]:
    calls = _calls(int(7 * 86_400 * calls_per_s), T0, 1000 / calls_per_s, seed=2)
    return [*calls, *_side_events(T0, T0 + 7 * DAY_MS, 5 * MINUTE_MS, seed=5)]


def _component_sizes(route: RouteState) -> dict[str, int]:
    sizes = {}
    parts: tuple[tuple[str, tuple[Any, ...]], ...] = (
        ("count windows", (route.errors, route.safety_blocks, route.schema_failures, route.review_rejections)),
        ("task cost window", (route.tasks,)),
        ("time windows (fine+coarse)", (route.windows,)),
        ("evidence + complaint log", (route.evidence, route.complaint_log)),
        ("drift detectors", (route.drift,)),
    )
    for name, part in parts:
        w = Writer()
        for obj in part:
            obj.write(w)
        sizes[name] = len(w.buf)
    return sizes


def _live_bytes(data: bytes) -> int:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    route = RouteState.from_bytes(data)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del route
    return after - before


def state_size() -> RouteState:
    print("\nState size of a route with every window full (7 days + 2 h of traffic, reviews, complaints)")
    kept: RouteState | None = None
    week = _week(1.0)
    for label, burst in (("1 call/s, last 2 h at 1 call/s", 1.0), ("1 call/s, last 2 h at 20 calls/s", 20.0)):
        start = time.perf_counter()
        route, n = _full_route(week, burst)
        fed = time.perf_counter() - start
        data = route.to_bytes()
        raw = sum(_component_sizes(route).values())
        assert RouteState.from_bytes(data) == route
        verdict = "OK" if len(data) <= TARGET_BYTES else "OVER"
        share = len(data) / TARGET_BYTES
        print(
            f"  {label:<34} {len(data) / 1024:6.1f} KB serialized ({share:.2f}x of 32 KB, {verdict}); "
            f"{raw / 1024:.1f} KB before zlib; live ~{_live_bytes(data) / 1024:.0f} KB "
            f"[{n} events, fed in {fed:.1f} s]"
        )
        for name, size in _component_sizes(route).items():
            print(f"      {name:<30} {size / 1024:6.1f} KB raw")
        kept = route
    assert kept is not None
    workflow = WorkflowState("wf")
    for event in _calls(5000, T0, 100.0, seed=5):
        workflow.apply(event)
    print(
        f"  a workflow's dedup ring of {workflow.config.dedup_ids} ids adds "
        f"{len(WorkflowState('wf').to_bytes()) / 1024:.1f} KB empty -> "
        f"{(len(workflow.to_bytes()) - len(workflow.routes['r1'].to_bytes())) / 1024:.1f} KB full"
    )
    return kept


def _time_ms(fn: Callable[[], object], repeats: int = 50) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def queries(route: RouteState) -> None:
    print("\nQuery cost on that route (ms per call)")
    now = route.windows.oldest_fine_ms()
    assert now is not None
    now += 64 * MINUTE_MS
    span30 = 30 * MINUTE_MS
    rows: list[tuple[str, Callable[[], object]]] = [
        ("window stats, 60 min", lambda: route.window(60 * MINUTE_MS, now)),
        ("p95 latency, 30 min", lambda: route.latency_quantile(0.95, span30, now)),
        ("p95 latency, one past minute", lambda: route.latency_quantile(0.95, MINUTE_MS, now - 7 * MINUTE_MS)),
        ("p95 of the previous 7 days (cached coarse merge)", lambda: route.baseline_latency_quantile(0.95, now)),
        ("complaints since a release", lambda: route.complaints_since(now - DAY_MS, now)),
        ("to_bytes", route.to_bytes),
    ]
    for name, fn in rows:
        print(f"  {name:<50} {_time_ms(fn):8.3f}")
    data = route.to_bytes()
    print(f"  {'from_bytes':<50} {_time_ms(lambda: RouteState.from_bytes(data), 10):8.3f}")
    fresh = RouteState.from_bytes(data)
    cold = _time_ms(lambda: fresh.baseline_latency_quantile(0.95, now), 1)
    print(f"  {'p95 of the previous 7 days, cold cache':<50} {cold:8.3f}")


def main() -> None:
    if sys.argv[1:] == ["--replay-mix"]:
        replay_mix()
        dedup_memory()
        return
    started = time.perf_counter()
    replay_mix()
    dedup_memory()
    throughput()
    route = state_size()
    queries(route)
    print(f"\nbench done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
