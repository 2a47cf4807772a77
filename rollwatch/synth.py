"""Seeded synthetic telemetry: a control arm and a canary arm, with regressions on demand.

The demo's traffic generator, the replay benchmark and the detection tests all use
it, so "every injected regression is caught" is checked against the same traffic an
operator sees in ``make demo``. Generation is deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from rollwatch.events import Arm, CallEvent, CallStatus, ComplaintEvent, Event, ReviewEvent, Verdict

__all__ = ["REGRESSIONS", "Regression", "Traffic", "generate"]

Regression: TypeAlias = Literal[
    "none", "schema", "latency", "cost", "reviews", "safety", "complaints", "errors", "quality", "provider_outage"
]
REGRESSIONS: tuple[Regression, ...] = (
    "schema",
    "latency",
    "cost",
    "reviews",
    "safety",
    "complaints",
    "errors",
    "quality",
)


@dataclass(frozen=True, slots=True)
class Traffic:
    """What to generate. Rates are per call; ``onset_ms`` is when the regression starts.

    ``provider_outage`` degrades both arms at once: relative gates must not blame the
    candidate for it.
    """

    workflow: str = "support-summary"
    control_route: str = "support-summary/stable"
    candidate_route: str = "support-summary/candidate"
    start_ms: int = 1_763_900_000_000
    duration_ms: int = 3 * 60 * 60_000
    calls_per_second: float = 20.0
    candidate_share: float = 0.05
    regression: Regression = "none"
    onset_ms: int = 60 * 60_000
    seed: int = 0
    review_share: float = 0.5
    latency_median_ms: float = 900.0
    base: dict[str, float] = field(
        default_factory=lambda: {
            "schema": 0.001,
            "error": 0.005,
            "safety": 0.002,
            "reject": 0.08,
            "complaint": 0.0,
            "cost": 0.008,
            "quality": 4.2,
        }
    )


def _rates(traffic: Traffic, arm: str, ts_ms: int) -> dict[str, float]:
    rates = dict(traffic.base)
    latency_factor = 1.0
    after = ts_ms >= traffic.start_ms + traffic.onset_ms
    hit = after and (arm == "candidate" or traffic.regression == "provider_outage")
    if hit:
        match traffic.regression:
            case "schema":
                rates["schema"] = 0.06
            case "latency":
                latency_factor = 3.0
            case "cost":
                rates["cost"] *= 2.5
            case "reviews":
                rates["reject"] += 0.15
            case "safety":
                rates["safety"] *= 15
            case "complaints":
                rates["complaint"] = 0.01
            case "errors":
                rates["error"] = 0.12
            case "quality":
                rates["quality"] = 2.4
            case "provider_outage":
                rates["schema"], rates["error"], rates["reject"] = 0.05, 0.2, rates["reject"] + 0.2
                rates["safety"] *= 4
                latency_factor = 3.0
    rates["latency_factor"] = latency_factor
    return rates


def generate(traffic: Traffic) -> Iterator[Event]:
    """Events in event-time order: calls, some followed by a review, rarely a complaint."""
    rng = random.Random(traffic.seed)
    step_ms = 1000 / traffic.calls_per_second
    n = int(traffic.duration_ms / step_ms)
    mu = math.log(traffic.latency_median_ms)
    for i in range(n):
        ts = traffic.start_ms + int(i * step_ms)
        candidate = rng.random() < traffic.candidate_share
        arm: Arm = "candidate" if candidate else "control"
        route = traffic.candidate_route if candidate else traffic.control_route
        r = _rates(traffic, arm, ts)
        status: CallStatus = "error" if rng.random() < r["error"] else "ok"
        valid = rng.random() >= r["schema"]
        call_id = f"{traffic.seed}-{i}"
        trace = f"tr-{traffic.seed}-{i}"
        yield CallEvent(
            call_id,
            ts,
            traffic.workflow,
            route,
            latency_ms=rng.lognormvariate(mu, 0.35) * r["latency_factor"],
            status=status,
            schema_valid=valid,
            safety_blocked=rng.random() < r["safety"],
            task_success=status == "ok" and valid,
            cost_usd=max(0.0, rng.gauss(r["cost"], r["cost"] / 10)),
            arm=arm,
            trace_id=trace,
            quality_score=min(5.0, max(0.0, rng.gauss(r["quality"], 0.4))),
        )
        if rng.random() < traffic.review_share:
            verdict: Verdict = "rejected" if rng.random() < r["reject"] else "approved"
            yield ReviewEvent(
                f"{call_id}-review",
                ts + 500,
                traffic.workflow,
                route,
                verdict,
                arm=arm,
                trace_id=trace,
                call_event_id=call_id,
            )
        if rng.random() < r["complaint"]:
            yield ComplaintEvent(
                f"{call_id}-complaint",
                ts + 1000,
                traffic.workflow,
                route,
                confirmed=True,
                arm=arm,
                trace_id=trace,
                call_event_id=call_id,
                sample="The summary invents a refund that was never issued.",
            )
