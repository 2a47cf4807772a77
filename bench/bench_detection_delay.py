"""Detection delay of the gates' change detectors against the information bound, and false rollbacks.

For every guarded gate family of the support-summary ticket (schema failures, review
rejections, safety blocks, error rate, latency, cost per successful task, quality), a
regression starts 10 minutes, 2 hours or 6 hours into a release, at 6, 0.5 and 0.05
candidate calls/s. Each cell prints the median detection delay (observations after the
onset, and minutes), its ratio to the information bound (alpha: the ticket's), and the
delay of the seed's literal rule (the window over its threshold, acted on at once; for
latency, held for the ticket's 30 minutes ``sustained`` as the seed says).

The bound is ``log(1/alpha)`` over the evidence per observation the best alpha-level test
told the onset could gather: ``KL(p_after || p0)`` for the Bernoulli families (latency is one:
"p95 above 2x the baseline p95" is "more than 5% of calls slower than that"), and for cost and
quality, whose null is a bounded-below mean, the bounded-mean problem's
``max_lambda E log(1 + lambda * Y)`` (KL-inf, computed here by a fine grid over a large
sample, not with the detector's code).

Then the family-wise false-rollback rate: identical arms (every family at its healthy
level), 6-hour releases at 6 candidate calls/s, all seven detectors checked after every
batch, a release counting once if any of them alarms; with its exact 95% upper bound
(Clopper-Pearson; zero alarms in n releases gives 1 - 0.05^(1/n)). Also the same at the
null's boundary (every family exactly at what the ticket allows) over the ticket's
``canary.duration``, where the detectors' guarantee is tight.

The detectors are :class:`rollwatch.gates.detector.BernoulliDetector` and
:class:`rollwatch.gates.mean_detector.MeanDetector` (cost fed task by task, quality from
per-batch sums, as the gates feed them) with the thresholds the engine gives these gates
(:func:`rollwatch.gates.evaluate.detector_bank`, on the example ticket with its error-rate
gate guarded too, so seven gates share alpha). Two-arm nulls are taken at the control's
true rate plus the ticket's margin (the evaluator adds a confidence margin on the control's
estimate, which only makes it more lenient). Batches of ``BATCH_S`` seconds; draws are numpy's.

    .venv/bin/python bench/bench_detection_delay.py [--releases 300] [--seeds 25]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rollwatch.gates.detector import BernoulliDetector, info_bound  # noqa: E402
from rollwatch.gates.evaluate import detector_bank  # noqa: E402
from rollwatch.gates.mean_detector import COST_CAP, MeanDetector, quality_cap  # noqa: E402
from rollwatch.tickets.gates import MsprtGuard  # noqa: E402
from rollwatch.tickets.load import load_ticket  # noqa: E402
from rollwatch.tickets.model import Ticket  # noqa: E402

EXAMPLE = ROOT / "examples" / "support-summary.ticket.yaml"
BATCH_S = 10
ONSETS_MIN = (10, 120, 360)
RATES = (6.0, 0.5, 0.05)

Phase = str  # "healthy", "after" or "boundary"
Sampler = Callable[[np.random.Generator, int, Phase], np.ndarray]


@dataclass(frozen=True)
class Family:
    """A gate family. Bernoulli ones draw hits at a rate; mean ones draw increments ``Y``."""

    name: str
    healthy: float = 0.0
    """The candidate's (and control's) rate on identical arms."""
    p0: float = 0.0
    """What the ticket allows: the detector's null (Bernoulli)."""
    after: float = 0.0
    """The candidate's rate after the onset (Bernoulli)."""
    literal: float = 0.0
    """The seed's literal threshold on the window's rate (mean families: mean Y above 0)."""
    window: int = 0
    """The literal window in observations; 0 with ``window_min``."""
    window_min: float = 0.0
    """A time window instead (latency, quality): its observations at the cell's rate."""
    sustained_min: float = 0.0
    per_segment: bool = False
    sample: Sampler | None = None
    """Mean families: increments by phase."""
    by_values: bool = True
    """Mean families: fed value by value (cost) or from sums (quality)."""

    def window_at(self, rate: float) -> int:
        return self.window if self.window else max(1, round(self.window_min * 60 * rate))


_Z95 = NormalDist().inv_cdf(0.95)
SIGMA = 0.35  # rollwatch.synth: lognormal latency, sigma 0.35; a regression triples it
SLOW_HEALTHY = 1 - NormalDist().cdf(_Z95 + math.log(2) / SIGMA)
SLOW_AFTER = 1 - NormalDist().cdf(_Z95 + math.log(2 / 3) / SIGMA)
ALLOWED = 1.25 * 0.012  # cost-per-task: 1.25 x the estimate
FLOOR = 3.0  # quality-floor
TOP = quality_cap(FLOOR)


def cost_sample(rng: np.random.Generator, n: int, phase: Phase) -> np.ndarray:
    """Single-call tasks (rollwatch.synth): cost ~ N(mean, mean / 10), success 99.4% (errors, invalid)."""
    if phase == "boundary":  # cost per success exactly the allowance
        return np.minimum(rng.normal(ALLOWED, ALLOWED / 10, n) - ALLOWED, COST_CAP * ALLOWED) / ALLOWED
    mean = 0.02 if phase == "after" else 0.008
    cost = np.maximum(rng.normal(mean, mean / 10, n), 0.0)
    success = (rng.random(n) < 0.994).astype(float)
    ys: np.ndarray = np.minimum((cost - ALLOWED * success) / ALLOWED, COST_CAP)
    return ys


def quality_sample(rng: np.random.Generator, n: int, phase: Phase) -> np.ndarray:
    """Scores ~ N(mean, 0.4) clipped to [0, 5] (rollwatch.synth); 4.2 healthy, 2.4 after, the floor at the boundary."""
    mean = {"healthy": 4.2, "after": 2.4, "boundary": FLOOR}[phase]
    q = np.clip(rng.normal(mean, 0.4, n), 0.0, 5.0)
    return (FLOOR - q) / (TOP - FLOOR)


FAMILIES = (
    # json-failures: above 1% over the last 200 calls (control below 0.2%).
    Family("schema_failure", 0.001, 0.01, 0.04, 0.01, 200),
    # review-rejections: 5 points worse than the control's 8% over 200 reviews.
    Family("review_rejection", 0.08, 0.13, 0.25, 0.13, 200),
    # safety-blocks: at least 2x the control's 0.2% over 500 calls, judged per segment.
    Family("safety_blocks", 0.002, 0.004, 0.015, 0.004, 500, per_segment=True),
    # error rate above 5% over 15 minutes (0.5% healthy).
    Family("error_rate", 0.005, 0.05, 0.10, 0.05, window_min=15),
    # p95-latency: more than 5% of calls slower than 2x the baseline p95, over 30 minutes, for 30.
    Family("latency", SLOW_HEALTHY, 0.05, SLOW_AFTER, 0.05, window_min=30, sustained_min=30),
    # cost-per-task: above 1.25x the estimate over 1,000 completed tasks; cost 2.5x after.
    Family("cost_per_task", window=1000, sample=cost_sample),
    # quality-floor: mean below 3.0 over 60 minutes; 4.2 -> 2.4 out of 5.
    Family("quality", window_min=60, sample=quality_sample, by_values=False),
)


def guarded(ticket: Ticket) -> Ticket:
    """The example ticket with its error-rate gate guarded too: every family here shares alpha."""
    gates = tuple(
        g.model_copy(update={"guard": MsprtGuard(method="msprt", alpha=0.01)}) if g.name == "error-rate" else g
        for g in ticket.gates
    )
    return ticket.model_copy(update={"gates": gates})


_BOUNDS: dict[tuple[str, float], float] = {}


def bound(family: Family, alpha: float) -> float:
    key = (family.name, alpha)
    if key not in _BOUNDS:
        _BOUNDS[key] = _bound(family, alpha)
    return _BOUNDS[key]


def _bound(family: Family, alpha: float) -> float:
    if family.sample is None:
        return info_bound(family.after, family.p0, alpha)
    ys = family.sample(np.random.default_rng(99), 200_000, "after")
    best = max(float(np.mean(np.log1p(b * ys))) for b in np.linspace(0.0, 0.999, 1000))
    return math.log(1 / alpha) / best if best > 0 else math.inf


def upper95(k: int, n: int) -> float:
    """Exact one-sided 95% upper bound on a binomial proportion (bisection on the CDF)."""
    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        cdf = sum(math.comb(n, i) * mid**i * (1 - mid) ** (n - i) for i in range(k + 1))
        lo, hi = (mid, hi) if cdf > 0.05 else (lo, mid)
    return hi


class Stream:
    """One family's detector fed batch by batch, with its literal window beside it."""

    def __init__(self, family: Family, rate: float, log_a: float) -> None:
        self.family = family
        self.log_a = log_a
        self.det: BernoulliDetector | MeanDetector = BernoulliDetector() if family.sample is None else MeanDetector()
        self.size = family.window_at(rate)
        self.window: deque[tuple[float, int]] = deque()
        self.total = 0.0
        self.n = 0

    def step(self, rng: np.random.Generator, n: int, phase: Phase, t_ms: int) -> bool:
        """Feed one batch of ``n`` observations; True if the detector is at its alarm level."""
        f = self.family
        if f.sample is None:
            p = {"healthy": f.healthy, "after": f.after, "boundary": f.p0}[phase]
            hits = int(rng.binomial(n, p)) if n else 0
            assert isinstance(self.det, BernoulliDetector)
            self.det.update(hits, n, f.p0, t_ms, self.log_a)
            self._slide(float(hits), n)
        else:
            ys = f.sample(rng, n, phase) if n else np.zeros(0)
            assert isinstance(self.det, MeanDetector)
            if f.by_values:
                self.det.update_values(ys.tolist(), t_ms, self.log_a)
            else:
                self.det.update_sums(float(ys.sum()), float((ys * ys).sum()), t_ms, self.log_a)
            self._slide(float(ys.sum()), n)
        return self.det.log_stat >= self.log_a

    def _slide(self, total: float, n: int) -> None:
        self.window.append((total, n))
        self.total += total
        self.n += n
        while self.n - self.window[0][1] >= self.size:
            old_total, old_n = self.window.popleft()
            self.total -= old_total
            self.n -= old_n

    def literal_over(self) -> bool:
        if self.n < self.size:
            return False
        mean = self.total / self.n
        return mean > 0 if self.family.sample is not None else mean > self.family.literal


def delays(
    family: Family, rate: float, onset_s: int, log_a: float, alpha: float, rng: np.random.Generator
) -> tuple[float | None, float | None]:
    """(detector, literal) delay in candidate observations after the onset, for one seed."""
    stream = Stream(family, rate, log_a)
    end_s = onset_s + int(max(60 * bound(family, alpha) / rate, 3600 + 60 * family.sustained_min * 2))
    found: float | None = None
    literal: float | None = None
    over_since: float | None = None
    after = 0
    for t in range(0, end_s, BATCH_S):
        n = int(rng.poisson(rate * BATCH_S))
        phase = "after" if t >= onset_s else "healthy"
        alarmed = stream.step(rng, n, phase, t * 1000)
        if t >= onset_s:
            after += n
            if found is None and alarmed:
                found = after
            if stream.literal_over():
                over_since = after if over_since is None else over_since
                held = (after - over_since) / rate / 60 >= family.sustained_min
                if literal is None and held:
                    literal = after
            else:
                over_since = None
            if found is not None and literal is not None:
                break
    return found, literal


def false_rollbacks(
    releases: int, hours: float, rate: float, at_boundary: bool, log_a: dict[str, float]
) -> tuple[int, dict[str, int]]:
    rng = np.random.default_rng(20261206 + int(at_boundary))
    steps = int(hours * 3600 / BATCH_S)
    fired = 0
    by_family = {f.name: 0 for f in FAMILIES}
    phase = "boundary" if at_boundary else "healthy"
    for _ in range(releases):
        streams = [Stream(f, rate, log_a[f.name]) for f in FAMILIES]
        counts = rng.poisson(rate * BATCH_S, (steps, len(FAMILIES)))
        alarm = False
        for step in range(steps):
            for i, stream in enumerate(streams):
                if stream.step(rng, int(counts[step, i]), phase, step * BATCH_S * 1000):
                    alarm = True
                    by_family[stream.family.name] += 1
                    break
            if alarm:
                break
        fired += alarm
    return fired, by_family


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--releases", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=25)
    args = parser.parse_args()
    ticket = guarded(load_ticket(EXAMPLE))
    bank = detector_bank(ticket)
    alpha = bank.alpha
    log_a = {f.name: bank.log_a(per_segment=f.per_segment) for f in FAMILIES}
    started = time.perf_counter()
    print(
        f"ticket {ticket.ticket} (error-rate guarded too): alpha {alpha:g} split over {bank.shares} guarded "
        f"gates (the by-segment gate's share over {bank.segment_shares} segments), horizon "
        f"{bank.horizon_ms / 60_000:g} min; batches of {BATCH_S} s; median of {args.seeds} seeds"
    )
    print("latency's literal rule includes its 30 min sustained; the gate fires at max(sustained, detector)")
    print(f"{'family':<17}{'rate/s':>7}{'onset':>7}{'bound':>8}{'delay':>8}{'min':>8}{'ratio':>7}{'literal':>9}")
    ratios: dict[str, list[float]] = {}
    rng = np.random.default_rng(7)
    for family in FAMILIES:
        b = bound(family, alpha)
        for rate in RATES:
            for onset in ONSETS_MIN:
                runs = [delays(family, rate, onset * 60, log_a[family.name], alpha, rng) for _ in range(args.seeds)]
                found = [d for d, _ in runs if d is not None]
                lit = [x for _, x in runs if x is not None]
                med = statistics.median(found) if len(found) == len(runs) else None
                lit_med = statistics.median(lit) if lit else None
                ratio = med / b if med is not None else math.inf
                ratios.setdefault(family.name, []).append(ratio)
                print(
                    f"{family.name:<17}{rate:>7g}{onset:>6}m{b:>8.0f}"
                    f"{'miss' if med is None else f'{med:.0f}':>8}"
                    f"{'-' if med is None else f'{med / rate / 60:.1f}':>8}{ratio:>7.2f}"
                    f"{'-' if lit_med is None else f'{lit_med:.0f}':>9}"
                )
    every = [r for rs in ratios.values() for r in rs]
    for name, rs in ratios.items():
        print(f"  {name:<17} delay / bound: median {statistics.median(rs):.2f}, worst {max(rs):.2f}")
    print(f"delay / information bound, all cells: median {statistics.median(every):.2f}, worst {max(every):.2f}")
    n = args.releases
    k, which = false_rollbacks(n, 6, 6.0, False, log_a)
    print(
        f"identical arms, {n} releases of 6 h at 6 calls/s, {len(FAMILIES)} detectors checked every batch: "
        f"{k} with a false rollback = {k / n:.4f}, 95% upper bound {upper95(k, n):.4f} (ticket alpha {alpha:g})"
        + (f" {which}" if k else "")
    )
    nb = max(n // 3, 50)
    horizon_h = bank.horizon_ms / 3_600_000
    kb, which = false_rollbacks(nb, horizon_h, 6.0, True, log_a)
    print(
        f"at the null's boundary, {nb} releases of {horizon_h:g} h: {kb} = {kb / nb:.4f}, "
        f"95% upper bound {upper95(kb, nb):.4f} (guarantee: <= {alpha:g})" + (f" {which}" if kb else "")
    )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
