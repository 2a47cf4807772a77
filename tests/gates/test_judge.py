"""The judge: ladders, settle times, no flapping, escalation, promotion, deterministic ids."""

from __future__ import annotations

from rollwatch.gates.engine import Engine
from rollwatch.gates.judge import JudgeMemory, command_id, judge
from rollwatch.gates.result import GateResult
from rollwatch.tickets.model import Ticket

MIN = 60_000


def result(gate: str, state: str = "breached") -> GateResult:
    return GateResult(gate, "test", "m", state, 1.0, 0.5, 0.1, "w", {"candidate": 500})  # type: ignore[arg-type]


def test_sustained_breach_then_a_ladder_with_settle_time(ticket: Ticket) -> None:
    memory = JudgeMemory()
    t = 0
    # p95-latency must hold for 30 minutes before the first rung.
    assert judge(ticket, [result("p95-latency")], memory, t) == []
    assert judge(ticket, [result("p95-latency")], memory, t + 29 * MIN) == []
    first = judge(ticket, [result("p95-latency")], memory, t + 30 * MIN)
    assert [(d.kind, d.action, d.step) for d in first] == [("rollback", "set_route_mode", 0)]
    assert first[0].flags == {"ai.route.mode": "async"}
    # The second rung waits the rung's 15 minutes, and only if still breached.
    assert judge(ticket, [result("p95-latency")], memory, t + 40 * MIN) == []
    second = judge(ticket, [result("p95-latency")], memory, t + 45 * MIN)
    assert [(d.action, d.step) for d in second] == [("restore_route", 1)]
    assert second[0].flags == {"ai.route.provider": "support-summary/stable"}
    # The ladder is spent: no more commands, however long the breach lasts.
    assert judge(ticket, [result("p95-latency")], memory, t + 300 * MIN) == []


def test_a_breach_that_clears_resets_the_sustain_clock(ticket: Ticket) -> None:
    memory = JudgeMemory()
    judge(ticket, [result("p95-latency")], memory, 0)
    judge(ticket, [result("p95-latency", "healthy")], memory, 20 * MIN)
    assert judge(ticket, [result("p95-latency")], memory, 31 * MIN) == []
    assert judge(ticket, [result("p95-latency")], memory, 61 * MIN) != []


def test_one_command_per_rung_no_flapping(ticket: Ticket) -> None:
    memory = JudgeMemory()
    issued = [d for t in range(0, 600 * MIN, MIN) for d in judge(ticket, [result("json-failures")], memory, t)]
    assert len(issued) == 1 and issued[0].action == "restore_route_and_prompt"


def test_action_outside_automations_authority_escalates(ticket: Ticket) -> None:
    decisions = judge(ticket, [result("safety-blocks")], JudgeMemory(), 0)
    assert [d.kind for d in decisions] == ["escalate"]
    assert "rollwatch-worker may not disable_segment" in decisions[0].note
    assert "priya.natarajan" in decisions[0].note and "ic-rotation" in decisions[0].note


def test_command_ids_are_deterministic_and_distinct() -> None:
    assert command_id("wf", "T", 1, "g", 1, 0) == command_id("wf", "T", 1, "g", 1, 0)
    ids = {
        command_id("wf", "T", 1, "g", 1, 0),
        command_id("wf", "T", 2, "g", 1, 0),
        command_id("wf", "T", 1, "h", 1, 0),
        command_id("wf", "T", 1, "g", 1, 1),
        command_id("wf", "T", 1, "g", 2, 0),
        command_id("other-wf", "T", 1, "g", 1, 0),
    }
    assert len(ids) == 6


def single_gate(ticket: Ticket, name: str) -> Ticket:
    return ticket.model_copy(update={"gates": (ticket.gate(name),)})


def test_promotion_steps_need_health_sustained_for_the_hold(ticket: Ticket) -> None:
    one = single_gate(ticket, "json-failures")
    memory = JudgeMemory()
    healthy = [result("json-failures", "healthy")]
    promo = result("promotion", "healthy")
    assert judge(one, healthy, memory, 0, promo) == []
    assert judge(one, healthy, memory, 59 * MIN, promo) == []
    first = judge(one, healthy, memory, 60 * MIN, promo)
    assert [(d.kind, dict(d.flags)) for d in first] == [("promote", {"ai.rollout.percent": 10.0})]
    assert judge(one, healthy, memory, 90 * MIN, promo) == []  # hysteresis: a fresh hold per step
    assert dict(judge(one, healthy, memory, 120 * MIN, promo)[0].flags) == {"ai.rollout.percent": 25.0}


def test_insufficient_evidence_blocks_promotion(ticket: Ticket) -> None:
    one = single_gate(ticket, "json-failures")
    memory = JudgeMemory()
    for t in range(0, 300 * MIN, 10 * MIN):
        assert judge(one, [result("json-failures", "insufficient")], memory, t, result("promotion", "healthy")) == []


def test_rollback_stops_promotion_for_the_revision(ticket: Ticket) -> None:
    one = single_gate(ticket, "json-failures")
    memory = JudgeMemory()
    judge(one, [result("json-failures")], memory, 0)
    promo = result("promotion", "healthy")
    for t in range(MIN, 600 * MIN, 30 * MIN):
        assert judge(one, [result("json-failures", "healthy")], memory, t, promo) == []


def test_new_revision_starts_clean(ticket: Ticket) -> None:
    memory = JudgeMemory()
    judge(ticket, [result("json-failures")], memory, 0)
    newer = ticket.model_copy(update={"revision": ticket.revision + 1})
    again = judge(newer, [result("json-failures")], memory, MIN)
    assert len(again) == 1 and again[0].command_id != command_id(
        ticket.workflow, ticket.ticket, ticket.revision, "json-failures", 1, 0
    )


def test_memory_round_trips_through_a_checkpoint(ticket: Ticket) -> None:
    engine = Engine("support-summary")
    engine.install(ticket)
    judge(ticket, [result("p95-latency")], engine.memory, 0)
    restored = Engine.from_bytes(engine.to_bytes())
    assert restored.memory == engine.memory
    assert restored.ticket == ticket


def test_by_segment_gates_breach_per_segment_and_name_it(ticket: Ticket) -> None:
    from rollwatch.events import CallEvent

    engine = Engine("support-summary")
    engine.install(ticket)
    events = []
    for i in range(1200):
        for segment in ("eu", "us"):
            candidate = i % 2 == 0
            blocked = candidate and segment == "eu" and i % 10 == 0
            events.append(
                CallEvent(
                    f"{segment}-{i}",
                    1_763_900_000_000 + i * 100,
                    "support-summary",
                    "support-summary/candidate" if candidate else "support-summary/stable",
                    800.0,
                    "ok",
                    True,
                    blocked,
                    True,
                    0.01,
                    segment=segment,
                    trace_id=f"t-{segment}-{i}",
                )
            )
    engine.apply(events)
    engine.evaluate(1_763_900_000_000 + 1200 * 100)
    safety = {r.segment: r.state for r in engine.last_results if r.gate == "safety-blocks"}
    assert safety == {"eu": "breached", "us": "healthy"}
    escalations = [d for d in engine.last_decisions if d.gate == "safety-blocks"]
    assert [(d.kind, d.segment) for d in escalations] == [("escalate", "eu")]
    restored = Engine.from_bytes(engine.to_bytes())
    assert sorted(restored.segments) == ["eu", "us"] and restored.memory == engine.memory
