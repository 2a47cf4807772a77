"""Change detection on a mean: cost per successful task and quality, which are not Bernoulli.

The question is the ticket's, "from some unknown time on, is the candidate's mean worse
than the ticket allows?", asked of a stream of increments ``Y_i`` that the gate builds so
that the ticket's hypothesis reads ``E[Y_i | past] <= 0`` and every ``Y_i >= -1``:

* cost per successful task at most ``m x estimate``: per completed task,
  ``Y = (cost - m * estimate * succeeded) / (m * estimate)``. Costs are not negative, so
  ``Y >= -1`` always. Summed over tasks, ``E[Y] <= 0`` is exactly "total cost over
  successes at most ``m x estimate``".
* mean quality at least the floor ``v``: per scored call, ``Y = (v - q) / (Q - v)`` with
  ``Q`` the largest score the gate assumes (:func:`quality_cap`), so ``Y >= -1`` when every
  score is at most ``Q``.

What is used: the same Shiryaev-Roberts e-detector as :mod:`rollwatch.gates.detector`
(Shin, Ramdas and Rinaldo, "E-detectors"), over betting e-processes instead of likelihood
ratios: for a bet ``lambda`` in [0, 1), ``prod_i (1 + lambda * Y_i)`` is a nonnegative
supermartingale whenever ``E[Y_i | past] <= 0`` and ``Y_i >= -1`` (Waudby-Smith and Ramdas,
"Estimating means of bounded random variables by betting"); a grid of bets :data:`BETS`,
mixed like the Bernoulli detector's alternatives, covers effects of unknown size. Against
the nonparametric null of every distribution with ``Y >= -1`` and mean at most 0, the best
growth any e-process can have is ``max_lambda E log(1 + lambda * Y)`` (the KL-inf of the
bounded-mean problem), which the grid attains to within a grid step: that is the
information bound ``bench/bench_detection_delay.py`` compares against.

Two ways to feed it:

* one value at a time (:meth:`MeanDetector.update_values`): the exact product. The cost
  gate does this: the route keeps the last tasks' costs and a count of completions
  (:class:`~rollwatch.streams.task_cost.TaskCostWindow`), so each task is read once.
  Increments are clipped above at :data:`COST_CAP`: clipping only lowers an increment, so
  the null still holds and the guarantee is untouched. Why clip: one runaway task (an agent
  stuck in a loop costing 100x) would otherwise bring ``log(1 + 0.8 * 100) = 4.4`` nats, a
  third of the alarm level, by itself; capped at 3 it brings at most 1.2, so a rollback
  needs about ten bad tasks. What it costs: a regression that lives only in rare tasks
  above ``(1 + COST_CAP)`` times the allowed cost is counted as if those tasks cost that.
* from sums (:meth:`MeanDetector.update_sums`, ``S = sum Y`` and ``V = sum Y^2`` of a
  batch): the quality gate does this, because the route keeps quality only as per-minute
  sums. By Fan, Grama and Liu (2012, Lemma 4.1), ``exp(lambda*y - psi(lambda)*y^2) <= 1 +
  lambda*y`` for ``y >= -1`` with ``psi(lambda) = -log(1 - lambda) - lambda``, so
  ``exp(lambda*S - psi(lambda)*V)`` is below the product and a supermartingale too. It is
  an empirical-Bernstein bound: it pays the second moment instead of the exact log, about
  1.5x the calls of the exact product for the synthetic quality drop (4.2 to 2.4 out of 5).
  A score above ``Q`` breaks ``Y >= -1`` for that call: the quality guarantee assumes
  scores at most ``Q``.

The guarantee is the Bernoulli detector's, with the same threshold (:func:`log_threshold`,
``A = H * G * S / alpha``: the ticket's alpha split over its guarded gates, over the
canary duration): the statistic (the average over bets) plus the onset weight still to
come is a nonnegative supermartingale under the null, so the probability of a false alarm
within ``H`` minutes is at most ``H / A``. The state per stream is ``len(BETS)`` floats, two cursors and the partial
sums of one bucket, serialized with the engine like the Bernoulli detector's.

Hand-written for the reason the Bernoulli detector is: no well-kept library ships an
e-detector, and the arithmetic is a handful of closed-form lines.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from rollwatch.gates.detector import log_mixture, onset_weight, sr_step

__all__ = ["BETS", "COST_CAP", "MeanDetector", "cost_increment", "growth", "psi_e", "quality_cap"]

BETS: Final = (0.1, 0.2, 0.4, 0.8)
"""Bets the mixture covers, spaced by 2x like the Bernoulli alternatives (their average costs
at most ``log 4`` nats over the best bet's). A bet of 0.8 suits increments
of a few tenths (a 2.5x cost jump against a 1.25x allowance is +0.33 per task); 0.1 keeps
evidence growing for effects ten times smaller."""
COST_CAP: Final = 3.0
"""A task's cost increment counts at most this much: 1 + COST_CAP times the allowed cost."""


def psi_e(bet: float) -> float:
    """Fan's ``psi_E``: ``-log(1 - bet) - bet``, the price per unit of ``y^2`` of betting from sums."""
    return -math.log1p(-bet) - bet


def quality_cap(floor: float) -> float:
    """The largest quality score the quality detector assumes: ``max(2 x floor, 1)``.

    Scores are on the ticket's scale (0-1, or 1-5 rubrics); the cap covers a 0-1 scale
    always, and any scale whose top is at most twice the floor (3.0 on a 0-5 scale: 6).
    """
    return max(2.0 * floor, 1.0)


def cost_increment(cost_usd: float, succeeded: bool, allowed_usd: float) -> float:
    """A completed task's increment against "cost per success at most ``allowed_usd``", clipped."""
    return min((cost_usd - (allowed_usd if succeeded else 0.0)) / allowed_usd, COST_CAP)


def growth(values: Iterable[float]) -> float:
    """Mean evidence per value of the best bet: ``max_k mean log(1 + bet_k * y)`` (<= 0 under the null)."""
    ys = list(values)
    if not ys:
        return 0.0
    return max(sum(math.log1p(bet * y) for y in ys) / len(ys) for bet in BETS)


@dataclass(slots=True)
class MeanDetector:
    """The e-detector of one mean stream: log R per bet, and what it has already read.

    ``seen_tasks`` is the route's completion count at the last update (the cost gate reads
    the tasks completed since). ``cursor_ms`` and ``seen`` play the Bernoulli detector's
    part for sums read from time buckets: the start of the bucket of the last update and
    the (count, sum, sum of squares) already taken from it.
    """

    log_r: list[float] = field(default_factory=lambda: [-math.inf] * len(BETS))
    at_ms: int | None = None
    cursor_ms: int | None = None
    seen: tuple[int, float, float] = (0, 0.0, 0.0)
    seen_tasks: int | None = None
    alarm_ms: int | None = None

    @property
    def log_stat(self) -> float:
        return log_mixture(self.log_r)

    def _step(self, log_lrs: list[float], now_ms: int, log_a: float) -> None:
        log_w = onset_weight(self.at_ms, now_ms)
        self.at_ms = now_ms if self.at_ms is None else max(self.at_ms, now_ms)
        before = self.log_stat
        sr_step(self.log_r, log_w, log_lrs)
        if self.log_stat >= log_a > before:
            self.alarm_ms = now_ms

    def update_values(self, values: Iterable[float], now_ms: int, log_a: float) -> None:
        """Fold in increments one by one (each >= -1 by construction; a lower one would count as -1)."""
        ys = [max(y, -1.0) for y in values]
        log1p = math.log1p
        self._step([math.fsum([log1p(bet * y) for y in ys]) for bet in BETS], now_ms, log_a)

    def update_sums(self, total: float, squares: float, now_ms: int, log_a: float) -> None:
        """Fold in a batch known by ``sum Y`` and ``sum Y^2`` (every ``Y >= -1``)."""
        self._step([bet * total - psi_e(bet) * max(squares, 0.0) for bet in BETS], now_ms, log_a)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "mean",
            "log_r": [None if v == -math.inf else v for v in self.log_r],
            "at_ms": self.at_ms,
            "cursor_ms": self.cursor_ms,
            "seen": list(self.seen),
            "seen_tasks": self.seen_tasks,
            "alarm_ms": self.alarm_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeanDetector:
        log_r = [-math.inf if v is None else float(v) for v in data["log_r"]]
        if len(log_r) != len(BETS):
            log_r = [-math.inf] * len(BETS)  # a checkpoint from another grid: start afresh
        n, total, squares = data["seen"]
        return cls(
            log_r,
            data["at_ms"],
            data["cursor_ms"],
            (int(n), float(total), float(squares)),
            data.get("seen_tasks"),
            data.get("alarm_ms"),
        )
