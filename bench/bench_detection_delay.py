"""Detection delay of the gates' change detector against the information bound, and false rollbacks.

For every guarded Bernoulli gate family of the support-summary ticket (schema failures,
review rejections, safety blocks, error rate), a regression starts 10 minutes, 2 hours or
6 hours into a release, at 6, 0.5 and 0.05 candidate calls/s. Each cell prints the median
detection delay (calls after the onset, and minutes), its ratio to the information bound
``log(1/alpha) / KL(p_after || p0)`` (alpha: the ticket's), and the delay of the seed's
literal rule (the window over its threshold, acted on at once).

Then the family-wise false-rollback rate: identical arms (every family at its healthy
rate), 6-hour releases at 6 candidate calls/s, all four detectors checked after every
batch, a release counting once if any of them alarms; with its exact 95% upper bound
(Clopper-Pearson; zero alarms in n releases gives 1 - 0.05^(1/n)). Also the same at the
null's boundary (every family exactly at what the ticket allows) over the ticket's
``canary.duration``, where the detector's guarantee is tight.

The detector is :class:`rollwatch.gates.detector.BernoulliDetector` with the thresholds the
engine gives these gates (:func:`rollwatch.gates.evaluate.detector_bank`). Two-arm nulls are
taken at the control's true rate plus the ticket's margin (the evaluator adds a confidence
margin on the control's estimate, which only makes it more lenient). Batches of
``BATCH_S`` seconds; counts are binomial draws (numpy), so the bench runs in about a minute.

    .venv/bin/python bench/bench_detection_delay.py [--releases 300]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rollwatch.gates.detector import BernoulliDetector, info_bound  # noqa: E402
from rollwatch.gates.evaluate import detector_bank  # noqa: E402
from rollwatch.tickets.load import load_ticket  # noqa: E402

EXAMPLE = ROOT / "examples" / "support-summary.ticket.yaml"
BATCH_S = 10
ONSETS_MIN = (10, 120, 360)
RATES = (6.0, 0.5, 0.05)
SEEDS = 25


@dataclass(frozen=True)
class Family:
    name: str
    healthy: float
    """The candidate's (and control's) rate on identical arms."""
    p0: float
    """What the ticket allows: the detector's null."""
    after: float
    """The candidate's rate after the onset."""
    literal: float
    """The seed's literal threshold on the window."""
    window: int
    per_segment: bool = False


FAMILIES = (
    # json-failures: above 1% over the last 200 calls (control below 0.2%).
    Family("schema_failure", 0.001, 0.01, 0.04, 0.01, 200),
    # review-rejections: 5 points worse than the control's 8% over 200 reviews.
    Family("review_rejection", 0.08, 0.13, 0.25, 0.13, 200),
    # safety-blocks: at least 2x the control's 0.2% over 500 calls, judged per segment.
    Family("safety_blocks", 0.002, 0.004, 0.015, 0.004, 500, per_segment=True),
    # error rate above 5% (a guarded threshold gate; 0.5% healthy).
    Family("error_rate", 0.005, 0.05, 0.10, 0.05, 1000),
)


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


def delays(
    family: Family, rate: float, onset_s: int, log_a: float, rng: np.random.Generator
) -> tuple[float | None, float | None]:
    """(detector, literal) delay in candidate calls after the onset, for one seed."""
    det = BernoulliDetector()
    window: deque[tuple[int, int]] = deque()
    in_window = hits_window = 0
    bound = info_bound(family.after, family.p0, 0.01)
    end_s = onset_s + int(max(60 * bound / rate, 3600))
    found: float | None = None
    literal: float | None = None
    after_calls = 0
    for t in range(0, end_s, BATCH_S):
        n = int(rng.poisson(rate * BATCH_S))
        p = family.after if t >= onset_s else family.healthy
        k = int(rng.binomial(n, p)) if n else 0
        if t >= onset_s:
            after_calls += n
        det.update(k, n, family.p0, t * 1000, log_a)
        window.append((k, n))
        hits_window += k
        in_window += n
        while in_window - window[0][1] >= family.window:
            old_k, old_n = window.popleft()
            hits_window -= old_k
            in_window -= old_n
        if t >= onset_s:
            if found is None and det.log_stat >= log_a:
                found = after_calls
            if literal is None and in_window >= family.window and hits_window / in_window > family.literal:
                literal = after_calls
            if found is not None and literal is not None:
                break
    return found, literal


def false_rollbacks(releases: int, hours: float, rate: float, at_boundary: bool, log_a: dict[str, float]) -> int:
    rng = np.random.default_rng(20261206 + int(at_boundary))
    steps = int(hours * 3600 / BATCH_S)
    fired = 0
    for _ in range(releases):
        dets = {f.name: BernoulliDetector() for f in FAMILIES}
        counts = {f.name: rng.poisson(rate * BATCH_S, steps) for f in FAMILIES}
        hits = {f.name: rng.binomial(counts[f.name], f.p0 if at_boundary else f.healthy) for f in FAMILIES}
        alarm = False
        for step in range(steps):
            for f in FAMILIES:
                det = dets[f.name]
                det.update(
                    int(hits[f.name][step]), int(counts[f.name][step]), f.p0, step * BATCH_S * 1000, log_a[f.name]
                )
                if det.log_stat >= log_a[f.name]:
                    alarm = True
                    break
            if alarm:
                break
        fired += alarm
    return fired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=300)
    args = parser.parse_args()
    ticket = load_ticket(EXAMPLE)
    bank = detector_bank(ticket)
    alpha = bank.alpha
    log_a = {f.name: bank.log_a(per_segment=f.per_segment) for f in FAMILIES}
    started = time.perf_counter()
    print(
        f"ticket {ticket.ticket}: alpha {alpha:g} split over {bank.shares} guarded gates "
        f"(the by-segment gate's share over {bank.segment_shares} segments), horizon "
        f"{bank.horizon_ms / 60_000:g} min; batches of {BATCH_S} s; median of {SEEDS} seeds"
    )
    print(f"{'family':<17}{'rate/s':>7}{'onset':>7}{'bound':>8}{'delay':>8}{'min':>8}{'ratio':>7}{'literal':>9}")
    ratios = []
    rng = np.random.default_rng(7)
    for family in FAMILIES:
        bound = info_bound(family.after, family.p0, alpha)
        for rate in RATES:
            for onset in ONSETS_MIN:
                runs = [delays(family, rate, onset * 60, log_a[family.name], rng) for _ in range(SEEDS)]
                found = [d for d, _ in runs if d is not None]
                lit = [x for _, x in runs if x is not None]
                med = statistics.median(found) if len(found) == len(runs) else None
                lit_med = statistics.median(lit) if lit else None
                ratio = med / bound if med is not None else math.inf
                ratios.append(ratio)
                print(
                    f"{family.name:<17}{rate:>7g}{onset:>6}m{bound:>8.0f}"
                    f"{'miss' if med is None else f'{med:.0f}':>8}"
                    f"{'-' if med is None else f'{med / rate / 60:.1f}':>8}{ratio:>7.2f}"
                    f"{'-' if lit_med is None else f'{lit_med:.0f}':>9}"
                )
    print(f"delay / information bound: median {statistics.median(ratios):.2f}, worst {max(ratios):.2f} (target <= 2)")
    n = args.releases
    k = false_rollbacks(n, 6, 6.0, False, log_a)
    print(
        f"identical arms, {n} releases of 6 h at 6 calls/s, 4 detectors checked every batch: "
        f"{k} with a false rollback = {k / n:.4f}, 95% upper bound {upper95(k, n):.4f} (ticket alpha {alpha:g})"
    )
    nb = max(n // 3, 50)
    horizon_h = bank.horizon_ms / 3_600_000
    kb = false_rollbacks(nb, horizon_h, 6.0, True, log_a)
    print(
        f"at the null's boundary, {nb} releases of {horizon_h:g} h: {kb} = {kb / nb:.4f}, "
        f"95% upper bound {upper95(kb, nb):.4f} (guarantee: <= {alpha:g})"
    )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
