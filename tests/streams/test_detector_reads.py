"""What the change detectors read from a route: calls slower than a latency, the tasks completed
since a count, and the quality scores' second moment; and that a version 1 route checkpoint (no
completion count) still restores."""

from __future__ import annotations

import random
from pathlib import Path

from rollwatch.streams import RouteState, StreamsConfig, TaskCostWindow

from .factories import T0, call

DATA = Path(__file__).parent / "data"


def test_slow_calls_are_counted_to_within_the_sketch_accuracy_and_never_over() -> None:
    route = RouteState("wf", "r1")
    rng = random.Random(3)
    latencies = [rng.lognormvariate(6.8, 0.6) for _ in range(5000)]
    for i, latency in enumerate(latencies):
        route.apply(call(T0 + i * 30, latency_ms=latency), T0 + i * 30 - 1)
    end = T0 + len(latencies) * 30
    accuracy = route.config.sketch_accuracy
    for threshold in (300.0, 900.0, 2000.0, 5000.0):
        slow, calls = route.calls_slower_than(threshold, T0, end)
        assert calls == len(latencies)
        exact = sum(x > threshold for x in latencies)
        # Calls more than twice the accuracy above the threshold are surely counted.
        surely = sum(x > threshold * (1 + 2 * accuracy) for x in latencies)
        assert surely <= slow <= exact, (threshold, surely, slow, exact)


def test_slow_calls_follow_the_bucket_rule_of_window_between() -> None:
    route = RouteState("wf", "r1")
    for minute in range(5):
        for i in range(10):
            route.apply(call(T0 + minute * 60_000 + i, latency_ms=100.0 * (minute + 1)), T0 + minute * 60_000)
    assert route.calls_slower_than(250.0, T0 + 60_000, T0 + 3 * 60_000) == (10, 20)  # minutes 1 and 2
    assert route.calls_slower_than(0.0, T0, T0 + 5 * 60_000) == (50, 50)
    assert route.calls_slower_than(1.0e6, T0, T0 + 5 * 60_000) == (0, 50)


def test_tasks_completed_since_a_count_are_read_once() -> None:
    window = TaskCostWindow(4)
    for i in range(6):
        window.update(1_000 * (i + 1), i % 2 == 0)
    assert window.total == 6 and window.completions == 4
    assert window.newest(2) == [(5_000, True), (6_000, False)]
    assert window.newest(10) == window.tasks()  # never more than the ring holds
    window.update(7, None)  # a step: not a completion
    assert window.total == 6
    restored = TaskCostWindow.from_bytes(window.to_bytes())
    assert restored == window and restored.total == 6


def test_quality_squares_are_summed_per_bucket() -> None:
    route = RouteState("wf", "r1")
    scores = [4.0, 2.5, 3.0]
    for i, q in enumerate(scores):
        route.apply(call(T0 + i, quality_score=q), T0)
    stats = route.window_between(T0, T0 + 60_000)
    assert (stats.quality_n, stats.quality_sum, stats.quality_sq) == (3, sum(scores), sum(q * q for q in scores))
    again = RouteState.from_bytes(route.to_bytes())
    assert again.window_between(T0, T0 + 60_000).quality_sq == stats.quality_sq


def test_a_version_1_route_checkpoint_restores_its_tasks_and_counts_on() -> None:
    # Written by the code before completion counts (tests/streams/data/route-v1-tasks.bin):
    # 11 calls, 7 of them completions, task window of 8.
    route = RouteState.from_bytes((DATA / "route-v1-tasks.bin").read_bytes())
    assert route.config == StreamsConfig(task_window=8)
    assert route.tasks.completions == 7 and route.tasks.total == 7
    written_at = 1_763_900_000_000  # the checkpoint's own clock
    route.apply(call(written_at + 20_000, task_success=True, cost_usd=0.002), written_at + 20_000)
    assert route.tasks.total == 8
    data = route.to_bytes()
    assert data[3] == 2
    assert RouteState.from_bytes(data).tasks.total == 8
