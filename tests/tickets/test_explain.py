"""The plain-words reading of a ticket says what each gate compares, which way, and what follows."""

from __future__ import annotations

import pytest

from rollwatch.tickets import AnyGate, Ticket, explain, load_ticket
from rollwatch.tickets.explain import describe_gate
from tests.tickets.documents import GOOD_EXAMPLES, example_path

SUPPORT = load_ticket(example_path("support-summary"))


def _direction_words(gate: AnyGate) -> str:
    """The words that state the gate's direction, as the explanation must contain them."""
    match gate.kind:
        case "schema_failure" | "latency_regression" | "cost_per_task":
            return " is above "
        case "review_rejection":
            return "percentage points above the control's"
        case "safety_blocks":
            return " is at least "
        case "complaints":
            return "at least "
        case "threshold":
            return f" is {getattr(gate, 'direction', '')} "
        case _:
            return " rise " if getattr(gate, "direction", "") == "increase" else " fall "


@pytest.mark.parametrize("name", GOOD_EXAMPLES)
def test_every_gate_is_explained_with_its_direction(name: str) -> None:
    ticket = load_ticket(example_path(name))
    text = explain(ticket)
    for i, gate in enumerate(ticket.gates, 1):
        [line] = [line for line in text.splitlines() if line.startswith(f"  {i}. {gate.name}: ")]
        assert _direction_words(gate) in line, line
        assert f"needs at least {gate.min_samples:,}" in line.lower()


def test_schema_gate_reads_as_the_release_ticket_states_it() -> None:
    assert describe_gate(SUPPORT, SUPPORT.gate("json-failures")).startswith(
        "Roll back (restore the control route and prompt) when the candidate's schema-validation failure rate "
        "over its last 200 calls is above 1.0% while the control's is below 0.2%; needs at least 200 candidate "
        "calls and 200 control calls."
    )


def test_quality_floor_reads_below() -> None:
    text = describe_gate(SUPPORT, SUPPORT.gate("quality-floor"))
    assert "mean quality score over the last 1 h is below 3;" in text


def test_ladder_reads_step_by_step() -> None:
    text = describe_gate(SUPPORT, SUPPORT.gate("p95-latency"))
    assert text.startswith("When the candidate's p95 end-to-end latency over the last 30 min is above 2x the control")
    assert "sustained for 30 min: move traffic to the async path for segment low-priority; " in text
    assert "if still breached 15 min later, roll back (restore the control route). Needs at least 300" in text


def test_actions_the_worker_may_not_take_say_who_is_paged() -> None:
    text = describe_gate(SUPPORT, SUPPORT.gate("safety-blocks"))
    assert text.endswith("rollwatch-worker may not disable_segment on its own: it pages priya.natarajan, ic-rotation.")
    assert "may not" not in describe_gate(SUPPORT, SUPPORT.gate("json-failures"))


def test_guards_and_segments_are_stated() -> None:
    text = describe_gate(SUPPORT, SUPPORT.gate("safety-blocks"))
    assert "Evaluated per segment" in text
    assert "only when its change detector confirms it: alpha 0.01" in text
    # A guard on a metric no detector watches (cost per request) says it is not used.
    gate = SUPPORT.gate("cost-per-request")
    guarded = gate.model_copy(update={"guard": SUPPORT.gate("json-failures").guard})  # type: ignore[union-attr]
    assert "Its guard is not used" in describe_gate(SUPPORT, guarded)
    refund = load_ticket(example_path("refund-drafting"))
    assert "Evaluated on segment high-value only." in describe_gate(refund, refund.gate("high-value-rejections"))


def test_sections() -> None:
    text = explain(SUPPORT)
    assert text.startswith("Release ticket REL-2041 (revision 3) for workflow support-summary\n")
    assert "changed: model_tier, model_id, prompt_version, prompt_commit" in text
    assert "Run 1,000 offline tickets, then start at 5% of traffic for 1 h." in text
    assert "Promote through 5% -> 10% -> 25% -> 50% -> 100%, each step only after every gate has been green" in text
    assert (
        "  1. Roll back (restore the control route and prompt): "
        "ai.route.provider=support-summary/stable, ai.prompt.version=support-summary-v14.\n"
        "  2. Switch actions to draft-only for the affected segments: ai.action.mode=draft." in text
    )
    assert "Evidence to attach: trace IDs, rejected samples, parser logs, cost sample, reviewer notes." in text
    assert "  incident commander (ic-rotation): any action\n      (overrides the rollout plan" in text
    assert "  support owner (support-lead): no flag actions (advises)\n" in text
    assert '  set_action_mode -> review_mode: "This request will be reviewed before it is sent or applied."' in text
    assert "do not use when an enterprise contract promises summaries on every resolved ticket." in text
    assert text.endswith(
        "Rollback objective: restore the previous route and prompt within 15 min; reduce automation within 5 min.\n"
    )


def test_doubling_rule_reads_higher_is_better() -> None:
    text = explain(load_ticket(example_path("order-agent")))
    assert (
        "For each 1 day window, compare the candidate's task success rate with the control's (at least 500 each; "
        "higher is better): at or above 99.0% of the control's, double the percent up to 100%" in text
    )
    assert "below 95.0% of it, set the percent to 0." in text


def test_explaining_does_not_depend_on_yaml() -> None:
    again = Ticket.model_validate_json(SUPPORT.model_dump_json(by_alias=True, exclude_none=True))
    assert explain(again) == explain(SUPPORT)
