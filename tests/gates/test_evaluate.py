"""Each gate at its thresholds' boundaries, with missing control data, with a provider-wide
incident, and with late events."""

from __future__ import annotations

from rollwatch.events import CallEvent
from rollwatch.gates.engine import Engine
from rollwatch.gates.evaluate import evaluate_gate
from rollwatch.tickets.model import Ticket
from tests.gates.conftest import CANDIDATE, WF, Traffic, wait


def gate_state(ticket: Ticket, traffic: Traffic, name: str, *, no_guard: bool = False) -> tuple[str, dict[str, int]]:
    gate = ticket.gate(name)
    if no_guard:
        gate = gate.model_copy(update={"guard": None})
    result = evaluate_gate(gate, traffic.arms(ticket), traffic.now + 1)
    return result.state, dict(result.needed)


# -- schema failures: candidate above 1.0% of its last 200 calls while control is below 0.2% ---------


def test_schema_needs_200_calls_on_each_arm(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("candidate", 150, schema_valid=False)
    assert gate_state(ticket, traffic, "json-failures") == ("insufficient", {"candidate": 50, "control": 200})


def test_schema_boundary(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("control", 200).calls("candidate", 198).calls("candidate", 2, schema_valid=False)
    assert gate_state(ticket, traffic, "json-failures", no_guard=True)[0] == "healthy"  # 1.0% is not above 1.0%
    traffic.calls("candidate", 1, schema_valid=False)
    literal = ticket.gate("json-failures").model_copy(update={"guard": None})
    result = evaluate_gate(literal, traffic.arms(ticket), traffic.now + 1)
    assert result.state == "breached" and result.observed == 0.015
    assert [e.kind for e in result.evidence] == ["schema_failure"] * 3
    assert result.breach_ts_ms == traffic.now


def test_schema_calls_without_a_verdict_do_not_count(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("control", 200).calls("candidate", 500, schema_valid=None).calls("candidate", 100)
    assert gate_state(ticket, traffic, "json-failures") == ("insufficient", {"candidate": 100})


def test_schema_guard_asks_for_evidence(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("control", 200).calls("candidate", 197).calls("candidate", 3, schema_valid=False)
    result = evaluate_gate(ticket.gate("json-failures"), traffic.arms(ticket), traffic.now + 1)
    # 1.5% is over the 1% threshold, but 3 failures in 200 calls are not evidence: suspect, not breached.
    assert result.state == "suspect" and result.guard is not None and not result.guard.significant
    assert result.guard.more_needed is not None and result.guard.more_needed > 0
    assert [e.kind for e in result.evidence] == ["schema_failure"] * 3
    traffic.calls("candidate", 20, schema_valid=False)
    assert gate_state(ticket, traffic, "json-failures")[0] == "breached"


def test_schema_provider_wide_failure_does_not_blame_the_candidate(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("control", 190).calls("control", 10, schema_valid=False)
    traffic.calls("candidate", 190).calls("candidate", 10, schema_valid=False)
    result = evaluate_gate(ticket.gate("json-failures"), traffic.arms(ticket), traffic.now + 1)
    assert result.state == "healthy" and "control fails schema validation too" in result.detail


# -- review rejection: candidate at least 5 points worse than control over 200 reviews -----------------


def test_review_boundary_without_guard(ticket: Ticket, traffic: Traffic) -> None:
    traffic.reviews("control", 190, 10).reviews("candidate", 181, 19)
    assert gate_state(ticket, traffic, "review-rejections", no_guard=True)[0] == "healthy"  # 4.5 points
    traffic.reviews("candidate", 0, 1)  # the window slides: 20 of the last 200 = 5.0 points worse
    assert gate_state(ticket, traffic, "review-rejections", no_guard=True)[0] == "breached"


def test_review_guard_wants_evidence_not_just_the_literal_gap(ticket: Ticket, traffic: Traffic) -> None:
    traffic.reviews("control", 190, 10).reviews("candidate", 180, 20)
    assert gate_state(ticket, traffic, "review-rejections")[0] == "suspect"
    traffic.reviews("candidate", 0, 100)
    assert gate_state(ticket, traffic, "review-rejections")[0] == "breached"


def test_review_missing_control_is_insufficient(ticket: Ticket, traffic: Traffic) -> None:
    traffic.reviews("candidate", 100, 100)
    assert gate_state(ticket, traffic, "review-rejections") == ("insufficient", {"control": 200})


def test_review_provider_wide_rejections_are_not_the_candidates(ticket: Ticket, traffic: Traffic) -> None:
    traffic.reviews("control", 120, 80).reviews("candidate", 118, 82)
    assert gate_state(ticket, traffic, "review-rejections")[0] == "healthy"


# -- safety blocks: candidate rate at least 2x control over 500 comparable requests --------------------


def test_safety_boundary_without_guard(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("control", 495).calls("control", 5, safety_blocked=True)  # 1.0%
    traffic.calls("candidate", 491).calls("candidate", 9, safety_blocked=True)  # 1.8%
    assert gate_state(ticket, traffic, "safety-blocks", no_guard=True)[0] == "healthy"
    traffic.calls("candidate", 1, safety_blocked=True)  # 2.0% = 2x
    assert gate_state(ticket, traffic, "safety-blocks", no_guard=True)[0] == "breached"


def test_safety_zero_control_blocks_use_the_floor(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("control", 500).calls("candidate", 499).calls("candidate", 1, safety_blocked=True)
    assert gate_state(ticket, traffic, "safety-blocks", no_guard=True)[0] == "breached"  # 0.2% >= 2 x 0.1% floor
    assert gate_state(ticket, traffic, "safety-blocks")[0] == "suspect"  # one block is no evidence


def test_safety_provider_wide(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("control", 470).calls("control", 30, safety_blocked=True)
    traffic.calls("candidate", 468).calls("candidate", 32, safety_blocked=True)
    assert gate_state(ticket, traffic, "safety-blocks", no_guard=True)[0] == "healthy"


# -- latency: candidate p95 over 30 minutes above 2x the previous 7 days' p95 -------------------------


def latency_traffic(traffic: Traffic, candidate_ms: float, control_recent_ms: float = 800.0) -> Traffic:
    traffic.calls("control", 2000, latency_ms=800.0)
    wait(traffic, 40 * 60_000)
    return traffic.calls("control", 500, latency_ms=control_recent_ms).calls("candidate", 400, latency_ms=candidate_ms)


def test_latency_boundary(ticket: Ticket, traffic: Traffic) -> None:
    latency_traffic(traffic, candidate_ms=1590.0)
    assert gate_state(ticket, traffic, "p95-latency")[0] == "healthy"
    traffic.calls("candidate", 400, latency_ms=1700.0)
    result = evaluate_gate(ticket.gate("p95-latency"), traffic.arms(ticket), traffic.now + 1)
    assert result.state == "breached"
    assert result.threshold is not None and abs(result.threshold - 1600) / 1600 < 0.02


def test_latency_without_control_baseline_is_insufficient(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("candidate", 400, latency_ms=5000.0)
    state, needed = gate_state(ticket, traffic, "p95-latency")
    assert state == "insufficient" and needed == {"control_baseline": 1}


def test_latency_provider_wide_slowdown(ticket: Ticket, traffic: Traffic) -> None:
    latency_traffic(traffic, candidate_ms=2500.0, control_recent_ms=2400.0)
    result = evaluate_gate(ticket.gate("p95-latency"), traffic.arms(ticket), traffic.now + 1)
    assert result.state == "healthy" and "provider-wide" in result.detail
    # The detector's null follows the control: every candidate call is slower than 2x the
    # baseline p95, yet the control's share is as high, so there is next to no evidence (the null's
    # 0.999 cap leaves crumbs: under a nat against an alarm level of 10).
    assert result.guard is not None and result.guard.log_threshold is not None
    assert not result.guard.significant and result.guard.log_lr < 1.0 < result.guard.log_threshold


def test_latency_guard_counts_slow_calls_against_five_percent(ticket: Ticket, traffic: Traffic) -> None:
    # 400 candidate calls, 4% of them far slower than 2x the 800 ms baseline: the window's p95 is
    # fine and a 4% share is inside the null of at most 5% slow.
    latency_traffic(traffic, candidate_ms=900.0)
    traffic.calls("candidate", 16, latency_ms=5000.0)
    result = evaluate_gate(ticket.gate("p95-latency"), traffic.arms(ticket), traffic.now + 1)
    assert result.state == "healthy" and result.guard is not None and result.guard.log_lr < 0
    traffic.calls("candidate", 150, latency_ms=5000.0)  # now 29% slow: p95 over, and the evidence is plain
    result = evaluate_gate(ticket.gate("p95-latency"), traffic.arms(ticket), traffic.now + 1)
    assert result.state == "breached" and result.guard is not None and result.guard.significant


# -- cost per successful task above 1.25x the approved estimate over 1,000 completed tasks -------------


def test_cost_boundary(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("candidate", 999, cost_usd=0.016)
    assert gate_state(ticket, traffic, "cost-per-task") == ("insufficient", {"candidate": 1})
    traffic.calls("candidate", 1, cost_usd=0.016)
    assert gate_state(ticket, traffic, "cost-per-task")[0] == "breached"  # 0.016 > 1.25 x 0.012
    traffic.calls("candidate", 1000, cost_usd=0.0149)
    assert gate_state(ticket, traffic, "cost-per-task")[0] == "healthy"


def test_cost_counts_the_steps_of_a_task(ticket: Ticket, traffic: Traffic) -> None:
    # Each task is two calls: a step (task_success null) and the completion; both cost 0.008.
    for _ in range(1000):
        traffic.calls("candidate", 1, cost_usd=0.008, task_success=None).calls("candidate", 1, cost_usd=0.008)
    result = evaluate_gate(ticket.gate("cost-per-task"), traffic.arms(ticket), traffic.now + 1)
    assert result.state == "breached" and result.observed is not None and abs(result.observed - 0.016) < 1e-9


# -- complaints: 3 confirmed complaints in one release window ------------------------------------------


def test_complaints(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("candidate", 10).complaints(2)
    assert gate_state(ticket, traffic, "ai-complaints")[0] == "healthy"
    traffic.complaints(1, sample=None)
    assert gate_state(ticket, traffic, "ai-complaints")[0] == "healthy"  # require_sample
    traffic.complaints(1)
    assert gate_state(ticket, traffic, "ai-complaints")[0] == "breached"


# -- absolute thresholds, explicit direction --------------------------------------------------------------


def test_error_rate_threshold_boundary(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("candidate", 95).calls("candidate", 5, status="error")
    assert gate_state(ticket, traffic, "error-rate")[0] == "healthy"  # 5% is not above 5%
    traffic.calls("candidate", 1, status="timeout")
    assert gate_state(ticket, traffic, "error-rate")[0] == "breached"


def test_quality_floor_fires_below_not_above(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("candidate", 50, quality_score=4.8)
    assert gate_state(ticket, traffic, "quality-floor")[0] == "healthy"  # the seed sketch would fire here
    traffic.calls("candidate", 200, quality_score=2.0)  # mean 2.56
    assert gate_state(ticket, traffic, "quality-floor", no_guard=True)[0] == "breached"


def test_quality_guard_wants_evidence_then_confirms(ticket: Ticket, traffic: Traffic) -> None:
    # 250 scores with a mean of 2.56 against a floor of 3.0: over the floor, not yet enough
    # evidence for the release-wide alarm level (log(60 min x 6 gates / 0.01) = 10.5 nats).
    traffic.calls("candidate", 50, quality_score=4.8).calls("candidate", 200, quality_score=2.0)
    result = evaluate_gate(ticket.gate("quality-floor"), traffic.arms(ticket), traffic.now + 1)
    assert result.state == "suspect" and result.guard is not None
    assert result.guard.more_needed is not None and 0 < result.guard.more_needed < 200
    traffic.calls("candidate", 200, quality_score=2.0)
    assert gate_state(ticket, traffic, "quality-floor")[0] == "breached"


def test_absolute_threshold_still_fires_in_a_provider_incident(ticket: Ticket, traffic: Traffic) -> None:
    traffic.calls("control", 80, status="error").calls("candidate", 80, status="error").calls("candidate", 40)
    result = evaluate_gate(ticket.gate("error-rate"), traffic.arms(ticket), traffic.now + 1)
    assert result.state == "breached" and "control breaches this limit too" in result.detail


# -- late events --------------------------------------------------------------------------------------------


def test_late_events_are_counted_and_left_out(ticket: Ticket) -> None:
    engine = Engine(WF)
    engine.install(ticket)
    now = 1_763_900_000_000
    on_time = [CallEvent(f"c{i}", now + i, WF, CANDIDATE, 800.0, "ok", True, False, True, 0.01) for i in range(200)]
    engine.apply(on_time)
    late = CallEvent("late-1", now - 6 * 60_000, WF, CANDIDATE, 800.0, "ok", False, False, True, 0.01)
    in_time = CallEvent("late-2", now - 4 * 60_000, WF, CANDIDATE, 800.0, "ok", False, False, True, 0.01)
    stats = engine.apply([late, in_time])
    assert (stats.applied, stats.late) == (1, 1)
    route = engine.state.candidate
    assert route is not None and route.schema_failures.count == 1 and route.late_events == 1
