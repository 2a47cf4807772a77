"""Exact cost per successful task over the last N completed tasks.

A task is the run of calls of one route up to and including a call whose
``task_success`` is set (true or false): the calls before it (``task_success`` null)
are its steps. Each completion is charged the cost of those steps plus its own, so
multi-step agents are priced per task, not per call. Money stays exact as integer
nano-dollars; the ring is an ``array('q')`` (8 bytes a task, not a list of ints).

``total`` counts every completion ever, so a reader that remembers it can take exactly
the tasks completed since (:meth:`TaskCostWindow.newest`): the cost gate's change
detector reads each task once. It is written from format version 2 of the frames that
hold a task window (task cost, route, workflow); older checkpoints restore it as the
number of tasks held.
"""

from __future__ import annotations

import math
from array import array
from typing import Final

from rollwatch.streams.codec import KIND_TASK_COST, Reader, Writer, frame, unframe
from rollwatch.streams.count_window import CountWindow

__all__ = ["TaskCostWindow", "usd_to_nano"]

_MAX_SIZE: Final = 10_000_000


def usd_to_nano(cost_usd: float) -> int:
    """Dollars to integer nano-dollars, the unit every cost is summed in."""
    return round(cost_usd * 1e9)


class TaskCostWindow:
    """The last ``size`` completed tasks: their costs, and which succeeded.

    ``cost_per_success_usd`` is ``None`` with no completed task in the window and
    ``math.inf`` when there are completions but none succeeded (money spent, nothing
    delivered: a gate comparing against a ceiling fails, as it should).
    """

    __slots__ = ("_costs", "_pending", "_pos", "_success", "_total", "size", "total")

    def __init__(self, size: int) -> None:
        if type(size) is not int or not 1 <= size <= _MAX_SIZE:
            raise ValueError(f"task window size must be an int in [1, {_MAX_SIZE}], got {size!r}")
        self.size = size
        self._costs = array("q", bytes(8 * size))
        self._success = CountWindow(size)
        self._pos = 0
        self._total = 0
        self._pending = 0
        self.total = 0
        """Completions ever (not only those held): a cursor for readers of new tasks."""

    def update(self, cost_nano: int, task_success: bool | None) -> None:
        """Account one call: a step of the running task, or (when ``task_success`` is set) its end."""
        if task_success is None:
            self._pending += cost_nano
            return
        cost = self._pending + cost_nano
        self._pending = 0
        self.total += 1
        pos = self._pos
        self._total += cost - self._costs[pos]
        self._costs[pos] = cost
        pos += 1
        self._pos = 0 if pos == self.size else pos
        success = self._success  # CountWindow.update's common case, inlined (see CountWindow)
        pos = success._pos
        if task_success != success._bits[pos >> 3] >> (pos & 7) & 1 or pos == success._last:
            success.update(task_success)
        else:
            success._pos = pos + 1

    @property
    def completions(self) -> int:
        return self._success.n

    @property
    def successes(self) -> int:
        return self._success.count

    @property
    def cost_nano(self) -> int:
        """Total cost of the completed tasks in the window."""
        return self._total

    @property
    def pending_nano(self) -> int:
        """Cost of the steps of the task in progress (not yet in the window)."""
        return self._pending

    @property
    def cost_per_success_usd(self) -> float | None:
        if not self._success.n:
            return None
        if not self._success.count:
            return math.inf
        return self._total / self._success.count / 1e9

    @property
    def success_rate(self) -> float | None:
        return self._success.rate

    def tasks(self) -> list[tuple[int, bool]]:
        """(cost_nano, succeeded) of the held tasks, oldest first."""
        n = self._success.n
        start = (self._pos - n) % self.size
        costs = [self._costs[(start + i) % self.size] for i in range(n)]
        return list(zip(costs, self._success.flags(), strict=True))

    def newest(self, count: int) -> list[tuple[int, bool]]:
        """(cost_nano, succeeded) of the newest ``count`` completions held (fewer if fewer are), oldest first."""
        n = min(max(count, 0), self._success.n)
        if not n:
            return []
        flags = self._success.flags(n)
        start = (self._pos - n) % self.size
        if start + n <= self.size:
            costs = self._costs[start : start + n].tolist()
        else:
            costs = self._costs[start:].tolist() + self._costs[: start + n - self.size].tolist()
        return list(zip(costs, flags, strict=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskCostWindow):
            return NotImplemented
        return (
            self.size == other.size
            and self._pending == other._pending
            and self.total == other.total
            and self.tasks() == other.tasks()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TaskCostWindow(size={self.size}, completions={self.completions}, successes={self.successes})"

    def write(self, w: Writer) -> None:
        """The ring as laid out (so a restored window evicts in the same order), costs divided
        by their gcd (prices are often whole micro-dollars, which saves a byte a task)."""
        held = self._success.n
        costs = self._costs[:held].tolist()
        divisor = math.gcd(*costs) or 1
        w.uint(self.size)
        w.uint(self._pending)
        w.uint(divisor)
        w.uints([cost // divisor for cost in costs])
        self._success.write(w)
        w.uint(self.total)

    @classmethod
    def read(cls, r: Reader, with_total: bool = True) -> TaskCostWindow:
        """``with_total``: the frame's version writes :attr:`total` (2 and up for a task-cost frame)."""
        size = r.bounded(1, _MAX_SIZE, "task window size")
        window = cls(size)
        window._pending = r.uint()
        divisor = r.bounded(1, 1 << 62, "cost divisor")
        costs = [cost * divisor for cost in r.uints()]
        success = CountWindow.read(r)
        if success.size != size or success.n != len(costs):
            raise r.fail("task window costs and outcomes disagree")
        if costs and max(costs) >= 1 << 63:
            raise r.fail("task cost out of range")
        window._costs[: len(costs)] = array("q", costs)
        window._total = sum(costs)
        window._success = success
        window._pos = success.position
        window.total = r.uint() if with_total else success.n
        if window.total < success.n:
            raise r.fail("task window holds more tasks than it ever completed")
        return window

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return frame(KIND_TASK_COST, w.buf)

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskCostWindow:
        r = unframe(data, KIND_TASK_COST)
        window = cls.read(r, r.version >= 2)
        r.end()
        return window
