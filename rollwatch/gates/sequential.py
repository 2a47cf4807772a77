"""Always-valid significance guards: tests that may be checked after every batch.

A gate evaluated after every batch is a test repeated thousands of times. With a
fixed-sample test, or no test at all, noise alone eventually crosses the threshold
(the "peeking" problem), and that means a false rollback. The guards here are
mixture sequential probability ratio tests (mSPRT). Their statistic is a
nonnegative martingale under the null hypothesis, so by Ville's inequality
P(sup_n Λ_n >= 1/α) <= α: the false-alarm rate stays at most α however often the
gate is checked. They are written out here rather than taken from a library because
none of the well-kept ones (scipy, statsmodels, river) ships an always-valid test.
They are a few lines of closed-form maths over counts.

The gates no longer run these over the counts since the release started: a test of
everything since the start is diluted by every healthy call before a change, so a
regression two hours into a release took over an hour to confirm. Gates now run the
change detector of :mod:`rollwatch.gates.detector`, which restarts its evidence at every
possible onset. These tests remain for one-shot questions: "is this whole sample above p0?".

- :func:`rate_above`: one proportion, H0: p <= p0, with a Beta mixture over p > p0.
  This is exact for Bernoulli data; no normal approximation is needed, which matters
  for rare events such as a 1% schema-failure rate.
- :func:`difference_above`: two proportions, H0: p_a - k * p_b <= margin. This is the
  normal-mixture mSPRT of Johari et al. (2017, "Peeking at A/B tests"), the
  always-valid test used by large A/B platforms. It is approximate for small counts,
  so gates also require their minimum sample size before they consult it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["GuardVerdict", "difference_above", "rate_above"]


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """Whether the evidence is strong enough, and the statistic behind it.

    ``log_lr`` is the log of the mixture likelihood ratio (for a change detector, of its
    e-detector statistic); the guard passes when it reaches ``log_threshold`` (for the
    tests here ``log(1/alpha)``). ``p_value`` is ``min(1, 1/Λ)``. ``more_needed`` is, for
    a gate whose window is over its threshold without enough evidence yet, about how many
    more observations at the window's rate would confirm it.
    """

    significant: bool
    log_lr: float
    p_value: float
    log_threshold: float | None = None
    more_needed: int | None = None


def _verdict(log_lr: float, alpha: float) -> GuardVerdict:
    level = math.log(1 / alpha)
    return GuardVerdict(log_lr >= level, log_lr, min(1.0, math.exp(-log_lr)), level)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _log_beta_tail(p0: float, a: float, b: float) -> float:
    """log P(X > p0) for X ~ Beta(a, b), with integer a and b (a binomial sum, exact)."""
    # For integer a, b: P(X <= p0) = P(Binomial(a + b - 1, p0) >= a).
    n = int(a + b - 1)
    k0 = int(a)
    if p0 <= 0:
        return 0.0
    if p0 >= 1:
        return -math.inf
    log_p, log_q = math.log(p0), math.log1p(-p0)
    terms = [
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q
        for k in range(k0)
    ]
    peak = max(terms)
    upper = peak + math.log(sum(math.exp(t - peak) for t in terms))  # P(Binomial < a) = P(X > p0)
    return min(0.0, upper)


def rate_above(successes: int, trials: int, p0: float, alpha: float = 0.05) -> GuardVerdict:
    """Is the rate above ``p0``? Beta(1, 1) mixture over ``p > p0``, against the boundary ``p0``.

    The likelihood ratio against ``p0`` only grows as the true rate moves above it. So
    the test is valid for the whole composite null ``p <= p0``, not only at ``p0``.
    """
    if trials <= 0 or not 0 < p0 < 1:
        return GuardVerdict(False, 0.0, 1.0)
    s, f = successes, trials - successes
    # Mixture: ∫_{p0}^1 p^s (1-p)^f dp / P(p > p0 under the prior); the prior is uniform on (p0, 1).
    log_mix = _log_beta(s + 1, f + 1) + _log_beta_tail(p0, s + 1, f + 1) - math.log1p(-p0)
    log_null = s * math.log(p0) + f * math.log1p(-p0)
    return _verdict(log_mix - log_null, alpha)


def difference_above(
    hits_a: int,
    n_a: int,
    hits_b: int,
    n_b: int,
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    alpha: float = 0.05,
    tau: float = 0.05,
) -> GuardVerdict:
    """Is ``p_a - factor * p_b`` above ``margin``? One-sided normal-mixture mSPRT.

    ``tau`` is the standard deviation of the mixing distribution over the effect: the
    size of effect the test is most sensitive to, in rate units. The default, 5
    points, suits the seed's gates. With ``factor=2, margin=0`` this asks "is A's rate
    at least double B's?".
    """
    if n_a <= 0 or n_b <= 0:
        return GuardVerdict(False, 0.0, 1.0)
    p_a, p_b = hits_a / n_a, hits_b / n_b
    effect = p_a - factor * p_b - margin
    # Variance of the estimate, floored so that an all-zero arm does not claim certainty.
    floor_a, floor_b = 0.5 / (n_a + 1), 0.5 / (n_b + 1)
    var_a = max(p_a * (1 - p_a), floor_a * (1 - floor_a)) / n_a
    var_b = max(p_b * (1 - p_b), floor_b * (1 - floor_b)) / n_b
    v = var_a + factor * factor * var_b
    t2 = tau * tau
    log_lr = 0.5 * math.log(v / (v + t2)) + t2 * effect * effect / (2 * v * (v + t2))
    if effect <= 0:
        # One-sided: evidence only counts in the direction of harm.
        log_lr = min(log_lr, 0.0)
    return _verdict(log_lr, alpha)
