"""The change detector: a mid-release onset is caught about as fast as an early one, within a
budget of the information bound, and the null boundary checked after every batch false-alarms
no more often than the alpha it was given.

Expected delays come from the information bound (``log(1/alpha) / KL``), computed here from
the rates, not from the detector."""

from __future__ import annotations

import math
import random

import orjson
import pytest

from rollwatch.events import CallEvent
from rollwatch.gates.bank import DetectorBank
from rollwatch.gates.detector import MINUTE_MS, BernoulliDetector, log_threshold
from rollwatch.gates.engine import Engine
from rollwatch.gates.evaluate import detector_bank
from rollwatch.gates.mean_detector import MeanDetector
from rollwatch.tickets.model import Ticket
from tests.gates.conftest import CANDIDATE, CONTROL, T0, WF

SECOND = 1000


def kl(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def run_stream(
    rng: random.Random, *, before: float, after: float, onset_s: int, p0: float, log_a: float, rate: float, end_s: int
) -> int | None:
    """Calls after the onset until the detector alarms (None if it never does), one batch per second."""
    det = BernoulliDetector()
    calls_after = 0
    carry = 0.0
    for second in range(end_s):
        carry += rate
        n = int(carry)
        carry -= n
        p = after if second >= onset_s else before
        hits = sum(rng.random() < p for _ in range(n))
        if second >= onset_s:
            calls_after += n
        det.update(hits, n, p0, T0 + second * SECOND, log_a)
        if det.log_stat >= log_a:
            return calls_after if second >= onset_s else -1
    return None


@pytest.mark.parametrize("onset_min", [10, 120])
def test_a_mid_release_jump_is_caught_within_the_bound_budget(onset_min: int) -> None:
    # The case: schema failures jump from 0.1% to 4% against a 1% null, 1.2 candidate calls/s.
    alpha, p0, before, after = 0.01, 0.01, 0.001, 0.04
    bound = math.log(1 / alpha) / kl(after, p0)  # ~178 calls
    log_a = log_threshold(alpha, 3, 60 * MINUTE_MS)
    rng = random.Random(onset_min)
    delays = []
    for _ in range(15):
        delay = run_stream(
            rng,
            before=before,
            after=after,
            onset_s=onset_min * 60,
            p0=p0,
            log_a=log_a,
            rate=1.2,
            end_s=onset_min * 60 + 3600,
        )
        assert delay is not None and delay >= 0, "missed, or fired before the onset"
        delays.append(delay)
    median = sorted(delays)[len(delays) // 2]
    # The price of a release-wide guarantee (see the module docstring) is log(H*G*K) nats over log(1/alpha).
    budget = bound * log_a / math.log(1 / alpha) * 1.3
    assert median <= budget, (median, bound, budget)


def test_onset_time_does_not_dilute_the_evidence() -> None:
    """The old since-release test needed 3x longer two hours in; the detector's delay must not grow."""
    log_a = log_threshold(0.01, 3, 60 * MINUTE_MS)
    rng = random.Random(3)

    def median(onset_s: int) -> int:
        delays = [
            run_stream(
                rng, before=0.001, after=0.04, onset_s=onset_s, p0=0.01, log_a=log_a, rate=1.2, end_s=onset_s + 3600
            )
            for _ in range(15)
        ]
        assert all(d is not None and d >= 0 for d in delays)
        return sorted(d for d in delays if d is not None)[7]

    early, late = median(600), median(6 * 3600)
    assert late <= early * 1.3 + 30, (early, late)


def test_identical_arms_stay_quiet_and_the_boundary_respects_alpha() -> None:
    # A generous alpha over a short horizon, so that a broken bound would show in 300 runs.
    alpha, p0, horizon_min = 0.2, 0.05, 20
    log_a = log_threshold(alpha, 1, horizon_min * MINUTE_MS)
    rng = random.Random(11)
    at_boundary = inside = 0
    runs = 300
    for _ in range(runs):
        if run_stream(rng, before=p0, after=p0, onset_s=0, p0=p0, log_a=log_a, rate=5, end_s=horizon_min * 60):
            at_boundary += 1
        if run_stream(rng, before=0.005, after=0.005, onset_s=0, p0=p0, log_a=log_a, rate=5, end_s=horizon_min * 60):
            inside += 1
    # 95% binomial upper margin over alpha: ~0.04 for 300 runs.
    assert at_boundary / runs <= alpha + 0.04, at_boundary
    assert inside == 0


def test_evaluating_twice_at_the_same_instant_changes_nothing() -> None:
    det = BernoulliDetector()
    det.update(5, 100, 0.01, T0, 10.0)
    before = det.to_dict()
    det.update(0, 0, 0.01, T0, 10.0)
    assert det.to_dict() == before


def test_bank_round_trips_through_json(ticket: Ticket) -> None:
    bank = detector_bank(ticket)
    bank.get("json-failures").update(3, 200, 0.01, T0, bank.log_a())
    copy = DetectorBank.from_dict(orjson.loads(orjson.dumps(bank.to_dict())))
    assert copy.to_dict() == bank.to_dict()
    # The example guards six gates at alpha 0.01 (schema, latency, cost, reviews, safety, quality);
    # the by-segment safety gate splits its share again.
    assert (copy.alpha, copy.shares) == (0.01, 6)
    assert copy.log_a(per_segment=True) > copy.log_a()


def test_the_engine_checkpoints_its_detectors(ticket: Ticket) -> None:
    engine = Engine(WF)
    engine.install(ticket)
    events = [
        CallEvent(
            f"e{i}", T0 + i * 200, WF, CANDIDATE if i % 2 else CONTROL, 800.0, "ok", i % 40 != 1, False, True, 0.01
        )
        for i in range(3000)
    ]
    engine.apply(events)
    engine.evaluate(T0 + 3000 * 200)
    before = engine.detectors.get("json-failures").to_dict()
    assert before["at_ms"] == T0 + 2999 * 200 and before["log_r"] != [None] * 4  # event time: the newest call
    restored = Engine.from_bytes(engine.to_bytes())
    assert restored.detectors.to_dict() == engine.detectors.to_dict()


def test_the_engine_checkpoints_its_mean_detectors_and_restores_mid_stream(ticket: Ticket) -> None:
    """Cost and quality detectors round-trip with the engine; a restored engine fed the rest of
    the stream ends where an uninterrupted one does (each task read once, by its count)."""

    def event(i: int) -> CallEvent:
        worse = i % 2 == 1 and i > 1500
        route = CANDIDATE if i % 2 else CONTROL
        cost, quality = (0.02, 2.0) if worse else (0.008, 4.2)
        return CallEvent(f"e{i}", T0 + i * 200, WF, route, 800.0, "ok", True, False, True, cost, quality_score=quality)

    def events(start: int, stop: int) -> list[CallEvent]:
        return [event(i) for i in range(start, stop)]

    whole, split = Engine(WF), Engine(WF)
    for engine in (whole, split):
        engine.install(ticket)
        engine.apply(events(0, 2000))
        engine.evaluate(T0 + 2000 * 200)
    restored = Engine.from_bytes(split.to_bytes())
    cost = restored.detectors.detectors["cost-per-task"]
    assert isinstance(cost, MeanDetector) and cost.seen_tasks == 1000  # every candidate call is a task
    assert isinstance(restored.detectors.detectors["quality-floor"], MeanDetector)
    for engine in (whole, restored):
        engine.apply(events(2000, 3000))
        engine.evaluate(T0 + 3000 * 200)
    assert restored.detectors.to_dict() == whole.detectors.to_dict()
    # The cost jump (0.008 -> 0.02 a task against 0.015 allowed) is plain by now.
    assert whole.detectors.get_mean("cost-per-task").log_stat >= whole.detectors.log_a()
