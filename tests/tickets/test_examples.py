"""The shipped examples: the good ones load, the bad one reports every planted mistake."""

from __future__ import annotations

import pytest

from rollwatch.tickets import TicketError, TicketProblem, check_ticket, load_ticket
from rollwatch.tickets.catalogue import ACTION_TYPES
from rollwatch.tickets.gates import GATE_KINDS, ThresholdGate
from tests.tickets.documents import EXAMPLES, GOOD_EXAMPLES, example_path

BAD = EXAMPLES / "bad.ticket.yaml"

# (line, field, part of the message) for every mistake planted in examples/bad.ticket.yaml.
BAD_PROBLEMS = [
    (6, "revision", "must be a whole number, got a string ('3')"),
    (15, "control.prompt_version", "must be a string, got a number (14); quote it"),
    (21, "candidate.route", "must differ from control.route ('support-summary/stable')"),
    (33, "canary.start_percent", "must be less than or equal to 100, got 150"),
    (34, "canary.duration", "must be a duration string like 30m or 7d, got a number (60)"),
    (46, "gates[0].rate_above", "must be less than 1, got 1.5"),
    (56, "gates[1].multiplier_above", "must be greater than 1, got 0.5"),
    (60, "gates[1].ladder[0]", "needs a wait"),
    (66, "gates[2].direction", "must be below for avg_quality_score: lower quality is worse"),
    (73, "gates[3].kind", "got 'safety_block'"),
    (77, "gates[3].action.type", "no role in authority may issue disable_segment"),
    (84, "gates[4].gaurd", "is not a field when kind is review_rejection; did you mean 'guard'?"),
    (85, "gates[4].action.type", "no role in authority may issue disable_segment"),
    (93, "evidence[1]", "got 'screenshots'"),
    (95, "owners.incident_commander", "is required"),
    (102, "owners.automation", "duplicate key (first on line 101)"),
    (116, "customer_messages.on_action.set_action_mode", "'review_mod' is neither a built-in message"),
    (119, "rollback_objective.restore_within", "must be 15m or less"),
]


@pytest.mark.parametrize("name", GOOD_EXAMPLES)
def test_good_examples_load(name: str) -> None:
    result = check_ticket(example_path(name))
    assert not isinstance(result, list), "\n".join(map(str, result))
    assert result.ticket.startswith("REL-")


def test_bad_example_reports_every_mistake_with_line_and_field() -> None:
    result = check_ticket(BAD)
    assert isinstance(result, list)
    assert [(p.line, p.field) for p in result] == [(line, field) for line, field, _ in BAD_PROBLEMS]
    for problem, (_, _, text) in zip(result, BAD_PROBLEMS, strict=True):
        assert problem.file == str(BAD)
        assert text in problem.message, problem


def test_every_marked_line_of_the_bad_example_has_a_problem() -> None:
    marked = [i for i, line in enumerate(BAD.read_text().splitlines(), 1) if "# MISTAKE" in line]
    result = check_ticket(BAD)
    assert isinstance(result, list)
    reported = {p.line for p in result}
    assert marked and all(line in reported for line in marked), sorted(set(marked) - reported)


def test_load_ticket_raises_with_all_problems() -> None:
    with pytest.raises(TicketError) as caught:
        load_ticket(BAD)
    assert len(caught.value.problems) == len(BAD_PROBLEMS)
    assert str(caught.value).startswith(f"{BAD}:6: revision: ")
    assert "(and 17 more problems)" in str(caught.value)


def test_problem_text_is_file_line_field_message() -> None:
    assert str(TicketProblem("t.yaml", 7, "gates[0].kind", "is required")) == "t.yaml:7: gates[0].kind: is required"
    assert str(TicketProblem("t.yaml", 0, "", "not valid JSON")) == "t.yaml: not valid JSON"


def test_support_summary_covers_every_seed_trigger() -> None:
    ticket = load_ticket(example_path("support-summary"))
    kinds = {g.kind for g in ticket.gates}
    assert kinds == set(GATE_KINDS)
    thresholds = {(g.metric, g.direction, g.value, g.window) for g in ticket.gates if isinstance(g, ThresholdGate)}
    assert thresholds == {
        ("error_rate", "above", 0.05, 15 * 60_000),
        ("p95_latency_ms", "above", 30_000, 15 * 60_000),
        ("avg_quality_score", "below", 3.0, 60 * 60_000),
        ("cost_per_request", "above", 0.10, 60 * 60_000),
    }
    assert any(g.ladder is not None for g in ticket.gates)
    assert [a.type for a in ticket.first_rollback] == ["restore_route_and_prompt", "set_action_mode"]
    assert ticket.canary.offline_tickets == 1000 and ticket.canary.start_percent == 5
    assert ticket.rollback_objective.restore_within == 15 * 60_000


def test_examples_use_every_action_type_between_them() -> None:
    used: set[str] = set()
    for name in GOOD_EXAMPLES:
        ticket = load_ticket(example_path(name))
        used |= {a.type for g in ticket.gates for a in g.actions} | {a.type for a in ticket.first_rollback}
    assert used == set(ACTION_TYPES)
