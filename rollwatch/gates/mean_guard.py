"""Feeding the mean detectors from a route: only what is new since the previous evaluation.

Cost per successful task reads completed tasks one by one from the route's task window,
by its completion count: each task once, in arrival order. If more tasks completed
between two evaluations than the window holds, the oldest of them are skipped; if the
route's count is behind the detector's (a route restored from an older checkpoint, its
events being replayed), nothing is read until it catches up. Either way a task is never
read twice, which is what the guarantee needs (skipping a task chosen by count, not by
value, keeps the null's supermartingale one).

Quality reads per-minute sums (count, sum and sum of squares of the scores) from the
route's time buckets, with the same cursor as the Bernoulli detectors: everything from
the bucket of the previous update on, minus what that update already took.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rollwatch.gates.mean_detector import BETS, MeanDetector, cost_increment, growth, psi_e

if TYPE_CHECKING:  # the route is read through the objects handed in (see rollwatch.gates.kinds)
    from rollwatch.streams.route_state import RouteState
    from rollwatch.streams.task_cost import TaskCostWindow

__all__ = ["cost_gain", "feed_quality", "feed_tasks", "quality_gain", "quality_sums"]

_NANO: float = 1e9


def feed_tasks(
    det: MeanDetector, tasks: TaskCostWindow, since_release: int, allowed_usd: float, now_ms: int, log_a: float
) -> None:
    """Fold in the tasks completed since the last update (at the first, the last ``since_release``)."""
    total = tasks.total
    if det.seen_tasks is None:
        det.seen_tasks = max(total - since_release, 0)
    new = total - det.seen_tasks
    if new <= 0:
        det.update_values([], now_ms, log_a)  # time still passes: an onset starts here
        return
    taken = tasks.newest(new)
    det.update_values([cost_increment(cost / _NANO, ok, allowed_usd) for cost, ok in taken], now_ms, log_a)
    det.seen_tasks = total


def quality_sums(n: int, total: float, squares: float, floor: float, cap: float) -> tuple[float, float]:
    """(sum Y, sum Y^2) of ``Y = (floor - q) / (cap - floor)`` over ``n`` scores known by their sums."""
    scale = cap - floor
    s = (n * floor - total) / scale
    v = (n * floor * floor - 2 * floor * total + squares) / (scale * scale)
    return s, max(v, 0.0)


def feed_quality(
    det: MeanDetector, route: RouteState, start_ms: int, floor: float, cap: float, now_ms: int, log_a: float
) -> None:
    """Fold in the scores since the last update (at the first, since ``start_ms``, the release's start)."""
    bucket = route.config.fine.bucket_ms
    if det.cursor_ms is None:
        det.cursor_ms = start_ms - start_ms % bucket
    stats = route.window_between(det.cursor_ms, now_ms + 1)
    seen_n, seen_sum, seen_sq = det.seen
    n = stats.quality_n - seen_n
    if n > 0:
        s, v = quality_sums(n, stats.quality_sum - seen_sum, stats.quality_sq - seen_sq, floor, cap)
        det.update_sums(s, v, now_ms, log_a)
    else:
        det.update_sums(0.0, 0.0, now_ms, log_a)
    det.cursor_ms = now_ms - now_ms % bucket
    kept = route.window_between(det.cursor_ms, now_ms + 1)
    det.seen = (kept.quality_n, kept.quality_sum, kept.quality_sq)


def cost_gain(tasks: TaskCostWindow, allowed_usd: float, recent: int) -> float:
    """Evidence per task the detector would gain at the rate of the last ``recent`` tasks."""
    return growth(cost_increment(cost / _NANO, ok, allowed_usd) for cost, ok in tasks.newest(recent))


def quality_gain(n: int, total: float, squares: float, floor: float, cap: float) -> float:
    """Evidence per score the detector would gain at a window's mean and second moment (Fan's bound)."""
    if n <= 0:
        return 0.0
    s, v = quality_sums(n, total, squares, floor, cap)
    return max(bet * s / n - psi_e(bet) * v / n for bet in BETS)
