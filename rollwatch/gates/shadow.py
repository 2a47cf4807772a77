"""Shadow analysis (seed 2, pattern 3): the shadow route answers the same request as the
served route, its answer is logged and never served, and the two quality scores are
compared pair by pair.

Pairing: the shadow call and the served call answer one request, so they carry the
same ``trace_id``. The served calls' scores are kept in a bounded map (the newest
``capacity`` by arrival), because the shadow's answer usually lands within seconds of
the served one. A shadow call whose partner has already left the map (or that has no
trace id) is counted as ``unpaired``, never guessed.
The recommendation is the seed's rule: promote when better > 1.5 x worse.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from rollwatch.events import CallEvent, Event

__all__ = ["ShadowComparison", "ShadowSummary"]

PROMOTE_RATIO: Final = 1.5


@dataclass(frozen=True, slots=True)
class ShadowSummary:
    better: int
    worse: int
    same: int
    unpaired: int

    @property
    def pairs(self) -> int:
        return self.better + self.worse + self.same

    @property
    def recommendation(self) -> str:
        """``promote`` or ``keep stable``, by the seed's rule; ``keep stable`` with no pairs."""
        return "promote" if self.pairs and self.better > self.worse * PROMOTE_RATIO else "keep stable"


class ShadowComparison:
    """Counts better / worse / same between shadow and served quality scores."""

    def __init__(self, capacity: int = 4096, tolerance: float = 1e-9) -> None:
        self.capacity = capacity
        self.tolerance = tolerance
        self._served: OrderedDict[str, float] = OrderedDict()
        self.better = self.worse = self.same = self.unpaired = 0

    def update(self, event: Event) -> None:
        if not isinstance(event, CallEvent) or event.quality_score is None:
            return
        if event.arm == "shadow":
            served = self._served.pop(event.trace_id, None) if event.trace_id else None
            if served is None:
                self.unpaired += 1
            elif event.quality_score > served + self.tolerance:
                self.better += 1
            elif event.quality_score < served - self.tolerance:
                self.worse += 1
            else:
                self.same += 1
        elif event.arm in ("control", None) and event.trace_id:
            self._served[event.trace_id] = event.quality_score
            if len(self._served) > self.capacity:
                self._served.popitem(last=False)

    def summary(self) -> ShadowSummary:
        return ShadowSummary(self.better, self.worse, self.same, self.unpaired)

    def to_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "tolerance": self.tolerance,
            "served": list(self._served.items()),
            "counts": [self.better, self.worse, self.same, self.unpaired],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShadowComparison:
        out = cls(int(data["capacity"]), float(data["tolerance"]))
        out._served = OrderedDict((str(k), float(v)) for k, v in data["served"])
        out.better, out.worse, out.same, out.unpaired = (int(n) for n in data["counts"])
        return out
