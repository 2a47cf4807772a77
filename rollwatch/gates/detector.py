"""Sequential change detection: "the candidate got worse than the ticket allows, from some unknown time on".

Why not the since-release tests any more. A test of the counts accumulated since the
release started is diluted by every healthy call before the change: a regression that
starts after two healthy hours needs as much evidence again before it shows (measured:
23-74 minutes for a jump a literal rule sees in 3). A change detector restarts its
evidence at every possible onset instead.

What is used: a Shiryaev-Roberts e-detector (Shin, Ramdas and Rinaldo, "E-detectors: a
nonparametric framework for sequential change detection") over a Bernoulli stream, with
the ticket's own hypothesis as the null: the candidate's rate is at most ``p0``, where
``p0`` is what the ticket allows (1% for a schema gate; the control's rate plus 5 points
for a review gate; twice the control's block rate for a safety gate). For each onset
``j`` the likelihood ratio of the calls since ``j`` against ``p0`` is a nonnegative
supermartingale under the null (any ``p <= p0``); the detector is their sum,

    R_n = (R_{n-1} + w_n) * L_n,

where ``L_n`` is the likelihood ratio of the batch folded in at update ``n`` and ``w_n``
the weight of the onset started there: the event time since the previous update, in
minutes. Against an unknown size of regression the ratio is a uniform mixture over a
grid of alternatives (odds ``ODDS_RATIOS`` times the null's), one ``R`` per alternative:
the price of not knowing the effect is ``log(len(ODDS_RATIOS))`` nats.

The guarantee. Let ``W`` be the onset weight of the whole horizon (``H``, the ticket's
canary duration in minutes). Under the null, ``E[L_n] <= 1``, so ``R_n`` plus the weight
still to come is a nonnegative supermartingale that starts at ``W``; so is the mixture's
average, ``sum_k R_k / K``, which is the statistic. Ville's inequality then bounds the
probability that the statistic ever reaches ``A`` within the horizon by ``H / A``, and the
mean time to a false alarm is at least ``A`` minutes. Each detector alarms at
``A = H * G * S / alpha``: ``G`` the number of guarded gates of the ticket (the ticket's
alpha is split evenly over them), ``S`` the segments a ``by_segment`` gate may judge (its
share split again; 1 otherwise). The mixture's size is not a factor of ``A``: averaging
already paid for it. So the probability of any false rollback within a release of the
ticket's length is at most the ticket's alpha at the null's boundary, and far less inside
it (identical arms sit well inside: a candidate at the control's 0.1% against a 1% null
drives ``R`` towards zero). Checking after every batch costs nothing extra: the bound
holds for the whole path.

The cost, in evidence, is ``log(H * G * S)`` nats, plus ``log K`` at most, over the information bound
``log(1/alpha) / KL(p1 || p0)``; ``bench/bench_detection_delay.py`` prints the ratio.

Two-arm nulls (review rejections, safety blocks) plug in an upper confidence bound on the
control's rate: an underestimated control would make the null too strict. The bound is
not itself anytime-valid, so for those gates the guarantee is approximate.

Hand-written because no well-kept library (scipy, statsmodels, river) ships an e-detector:
the whole of it is a few lines of closed-form arithmetic in log space, and the state per
stream is ``len(ODDS_RATIOS)`` floats plus a cursor, serialized with the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "MINUTE_MS",
    "ODDS_RATIOS",
    "BernoulliDetector",
    "expected_log_lr",
    "info_bound",
    "kl_bernoulli",
    "log_mixture",
    "log_threshold",
    "onset_weight",
    "sr_step",
]

MINUTE_MS: Final = 60_000
ODDS_RATIOS: Final = (1.6, 3.2, 6.4, 12.8)
"""Alternatives the mixture covers: a candidate with 1.6x to ~13x the null's odds of failing.

Spaced by 2x: a true effect between two of them keeps over 90% of the evidence per call
of the nearer one, and each alternative more costs ``log`` of the count in threshold."""

_FLOOR: Final = -745.0  # exp() underflows below this: the statistic is zero for all purposes


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == -math.inf:
        return a
    return a + math.log1p(math.exp(b - a))


def sr_step(log_r: list[float], log_w: float, log_lrs: list[float]) -> None:
    """One Shiryaev-Roberts step per alternative, in place: ``R_k = (R_k + w) * L_k`` in log space."""
    for k, llr in enumerate(log_lrs):
        value = _logaddexp(log_r[k], log_w) + llr
        log_r[k] = value if value > _FLOOR else -math.inf


def log_mixture(log_r: list[float]) -> float:
    """log of ``sum_k R_k / K``: the mixture statistic compared with :func:`log_threshold`."""
    total = -math.inf
    for value in log_r:
        total = _logaddexp(total, value)
    return total - math.log(len(log_r)) if total > -math.inf else -math.inf


def onset_weight(at_ms: int | None, now_ms: int) -> float:
    """log of the weight of the onset started at ``now_ms``: minutes since the previous update (1 at the first)."""
    if at_ms is None:
        return 0.0
    minutes = max(now_ms - at_ms, 0) / MINUTE_MS
    return math.log(minutes) if minutes > 0 else -math.inf


def _alternatives(p0: float) -> list[float]:
    odds = p0 / (1 - p0)
    return [odds * r / (1 + odds * r) for r in ODDS_RATIOS]


def kl_bernoulli(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q)) in nats: the evidence per call against ``q`` when the rate is ``p``."""
    if not 0 < q < 1:
        return math.inf
    total = 0.0
    if p > 0:
        total += p * math.log(p / q)
    if p < 1:
        total += (1 - p) * math.log((1 - p) / (1 - q))
    return total


def info_bound(p1: float, p0: float, alpha: float) -> float:
    """Calls no alpha-level detector can beat on average: ``log(1/alpha) / KL(p1 || p0)`` (inf if p1 <= p0)."""
    if p1 <= p0:
        return math.inf
    return math.log(1 / alpha) / kl_bernoulli(p1, p0)


def log_threshold(alpha: float, detectors: int, horizon_ms: int) -> float:
    """``log A`` for one detector: the ticket's alpha split ``detectors`` ways, over ``horizon_ms``.

    The mixture's size is not in ``A``: the statistic is the mixture's *average*, whose
    expectation is bounded by the onset weight like each member's, so the price of the
    mixture is paid once, inside the statistic (see the module docstring).
    """
    horizon_min = max(horizon_ms / MINUTE_MS, 1.0)
    return math.log(horizon_min * max(detectors, 1) / alpha)


def expected_log_lr(p: float, p0: float) -> float:
    """Evidence per call the detector gains (best alternative) when the true rate is ``p``; <= 0 under the null."""
    if not 0 < p0 < 1:
        return 0.0
    return max(
        p * math.log(p1 / p0) + (1 - p) * math.log((1 - p1) / (1 - p0)) for p1 in _alternatives(p0)
    )


@dataclass(slots=True)
class BernoulliDetector:
    """The e-detector of one stream (one gate, one segment): log R per alternative and a cursor.

    ``at_ms`` is the event time of the last update, ``cursor_ms`` the start of the bucket
    it fell in and ``seen`` the (hits, trials) already counted from that bucket on, so the
    next update takes only what arrived since (see :meth:`delta`).
    """

    log_r: list[float] = field(default_factory=lambda: [-math.inf] * len(ODDS_RATIOS))
    at_ms: int | None = None
    cursor_ms: int | None = None
    seen: tuple[int, int] = (0, 0)
    alarm_ms: int | None = None
    """Event time the statistic last crossed its threshold from below."""

    @property
    def log_stat(self) -> float:
        """log of the mixture ``sum_k R_k / K``: compared with :func:`log_threshold`."""
        return log_mixture(self.log_r)

    def delta(self, hits: int, trials: int) -> tuple[int, int]:
        """What is new in (hits, trials) counted from ``cursor_ms``: never negative (a spilled bucket counts 0)."""
        return max(hits - self.seen[0], 0), max(trials - self.seen[1], 0)

    def update(self, hits: int, trials: int, p0: float, now_ms: int, log_a: float) -> None:
        """Fold in a batch of ``trials`` with ``hits`` against the null ``p <= p0``, at event time ``now_ms``.

        A new onset of weight (minutes since the previous update) starts here. Updating
        twice at the same instant with nothing new changes nothing, so evaluating a gate
        again is harmless.
        """
        log_w = onset_weight(self.at_ms, now_ms)
        self.at_ms = now_ms if self.at_ms is None else max(self.at_ms, now_ms)
        if not 0 < p0 < 1:
            return
        before = self.log_stat
        log_q0 = math.log1p(-p0)
        log_p0 = math.log(p0)
        misses = trials - hits
        llrs = [
            hits * (math.log(p1) - log_p0) + misses * (math.log1p(-p1) - log_q0) for p1 in _alternatives(p0)
        ]
        sr_step(self.log_r, log_w, llrs)
        after = self.log_stat
        if after >= log_a > before:
            self.alarm_ms = now_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_r": [None if v == -math.inf else v for v in self.log_r],
            "at_ms": self.at_ms,
            "cursor_ms": self.cursor_ms,
            "seen": list(self.seen),
            "alarm_ms": self.alarm_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BernoulliDetector:
        log_r = [-math.inf if v is None else float(v) for v in data["log_r"]]
        if len(log_r) != len(ODDS_RATIOS):
            log_r = [-math.inf] * len(ODDS_RATIOS)  # a checkpoint from another grid: start afresh
        hits, trials = data["seen"]
        return cls(log_r, data["at_ms"], data["cursor_ms"], (int(hits), int(trials)), data.get("alarm_ms"))
