"""False-rollback rate on identical arms: the seed's literal thresholds versus the guard.

Both arms draw from the same distributions (no regression). Every gate is judged
once per minute of event time for six hours, as the worker would. A run that
rolls back at all is a false rollback. The literal thresholds (guard ``none``) check
point estimates after every batch, so noise eventually crosses them. The
always-valid guard (mSPRT) bounds that rate by its alpha however often it checks.
The same injected regressions are also run with the guard, to show that it still
catches them.

Prints, per variant: runs with a false rollback, the rate, and which gates fired.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from rollwatch.replay import replay_events
from rollwatch.synth import REGRESSIONS, Regression, Traffic, generate
from rollwatch.tickets.gates import MsprtGuard, NoGuard
from rollwatch.tickets.load import load_ticket
from rollwatch.tickets.model import Ticket

HOUR = 3_600_000
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "support-summary.ticket.yaml"


def with_guard(ticket: Ticket, guard: NoGuard | MsprtGuard) -> Ticket:
    gates = tuple(g.model_copy(update={"guard": guard}) if hasattr(g, "guard") else g for g in ticket.gates)
    return ticket.model_copy(update={"gates": gates})


def fired(ticket: Ticket, regression: Regression, seed: int, hours: int) -> set[str]:
    traffic = Traffic(
        regression=regression,
        seed=seed,
        duration_ms=hours * HOUR,
        onset_ms=HOUR,
        calls_per_second=4,
        candidate_share=0.3,
    )
    report = replay_events(ticket, [list(generate(traffic))])
    return {e.decision.gate for e in report.timeline if e.decision.kind in ("rollback", "escalate")}


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    base = load_ticket(EXAMPLE)
    variants = {
        "literal seed thresholds (guard none)": with_guard(base, NoGuard(method="none")),
        "always-valid guard (mSPRT, alpha 0.05)": with_guard(base, MsprtGuard(method="msprt", alpha=0.05)),
    }
    started = time.perf_counter()
    for name, ticket in variants.items():
        gates: Counter[str] = Counter()
        false_runs = 0
        for seed in range(runs):
            hit = fired(ticket, "none", seed, hours=6)
            false_runs += bool(hit)
            gates.update(hit)
        print(
            f"{name:<42} false rollbacks in {false_runs:>3}/{runs} runs = {false_runs / runs:6.1%}  "
            f"gates: {dict(gates) or '-'}"
        )
    guarded = variants["always-valid guard (mSPRT, alpha 0.05)"]
    caught = sum(bool(fired(guarded, regression, 1000, hours=3)) for regression in REGRESSIONS)
    print(f"injected regressions caught with the guard: {caught}/{len(REGRESSIONS)}")
    print(
        f"({time.perf_counter() - started:.0f}s; 6 h of traffic a run, 4 calls/s, 30% candidate, judged each minute)"
    )


if __name__ == "__main__":
    main()
