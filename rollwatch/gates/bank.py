"""The change detectors of one workflow's ticket, and the share of its alpha each gets.

Its own module because it holds both detector kinds (Bernoulli streams in
:mod:`rollwatch.gates.detector`, means in :mod:`rollwatch.gates.mean_detector`).
"""

from __future__ import annotations

from typing import Any

from rollwatch.gates.detector import MINUTE_MS, BernoulliDetector, log_threshold
from rollwatch.gates.mean_detector import MeanDetector

__all__ = ["DetectorBank"]


class DetectorBank:
    """Every detector of one workflow's ticket, by gate key (``gate`` or ``gate@segment``).

    It knows the ticket's alpha and how many detectors share it; the engine keeps one,
    resets it with the ticket revision and checkpoints it with the judge's memory.
    """

    __slots__ = ("alpha", "detectors", "horizon_ms", "segment_shares", "shares")

    def __init__(
        self, alpha: float = 0.05, shares: int = 1, horizon_ms: int = 60 * MINUTE_MS, segment_shares: int = 1
    ) -> None:
        self.alpha = alpha
        self.shares = shares
        """Guarded gates sharing ``alpha`` evenly."""
        self.segment_shares = segment_shares
        """Segments a ``by_segment`` gate's share is split over."""
        self.horizon_ms = horizon_ms
        self.detectors: dict[str, BernoulliDetector | MeanDetector] = {}

    def log_a(self, per_segment: bool = False) -> float:
        """A detector's alarm level: a gate's share of alpha, a segment's share of it for ``per_segment``."""
        split = self.shares * (self.segment_shares if per_segment else 1)
        return log_threshold(self.alpha, split, self.horizon_ms)

    def get(self, key: str) -> BernoulliDetector:
        found = self.detectors.get(key)
        if not isinstance(found, BernoulliDetector):  # absent, or a gate whose kind changed
            found = self.detectors[key] = BernoulliDetector()
        return found

    def get_mean(self, key: str) -> MeanDetector:
        found = self.detectors.get(key)
        if not isinstance(found, MeanDetector):
            found = self.detectors[key] = MeanDetector()
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "shares": self.shares,
            "segment_shares": self.segment_shares,
            "horizon_ms": self.horizon_ms,
            "detectors": {k: d.to_dict() for k, d in sorted(self.detectors.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorBank:
        bank = cls(float(data["alpha"]), int(data["shares"]), int(data["horizon_ms"]), int(data["segment_shares"]))
        bank.detectors = {k: _detector(v) for k, v in data["detectors"].items()}
        return bank


def _detector(data: dict[str, Any]) -> BernoulliDetector | MeanDetector:
    if data.get("kind") == "mean":
        return MeanDetector.from_dict(data)
    return BernoulliDetector.from_dict(data)
