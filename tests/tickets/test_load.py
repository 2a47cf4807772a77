"""Loading tickets from files and message bytes: every problem, on the right line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from rollwatch.errors import RollwatchError
from rollwatch.tickets import (
    TicketError,
    check_ticket,
    check_ticket_bytes,
    check_ticket_data,
    load_ticket,
    load_ticket_bytes,
    ticket_to_dict,
    ticket_to_json,
    validate_ticket_data,
)
from rollwatch.tickets.load import format_loc
from rollwatch.tickets.yamlsource import read_yaml
from tests.tickets.documents import GOOD_EXAMPLES, example_data, example_path, replaced


def _problems(text: str) -> list[tuple[int, str, str]]:
    result = check_ticket_bytes(text.encode(), "t.yaml")
    assert isinstance(result, list)
    return [(p.line, p.field, p.message) for p in result]


def _support_yaml() -> str:
    return example_path("support-summary").read_text()


@pytest.mark.parametrize("name", GOOD_EXAMPLES)
def test_json_round_trip_is_lossless(name: str) -> None:
    ticket = load_ticket(example_path(name))
    again = load_ticket_bytes(ticket_to_json(ticket), "topic/releases")
    assert again == ticket
    assert ticket_to_json(again) == ticket_to_json(ticket)


def test_wire_form_spells_durations_and_flags_as_written() -> None:
    ticket = load_ticket(example_path("support-summary"))
    wire = ticket_to_dict(ticket)
    assert wire["canary"]["duration"] == "1h"  # 60m, shortest exact spelling
    assert wire["gates"][1]["baseline_window"] == "7d"
    assert "region" not in wire["candidate"]["retrieval"]
    assert wire["authority"]["incident_commander"][0] == "restore_route"  # "all", expanded


def test_yaml_bytes_and_json_bytes_give_the_same_ticket() -> None:
    text = _support_yaml()
    from_yaml = load_ticket_bytes(text.encode(), "m")
    from_json = load_ticket_bytes(orjson.dumps(example_data("support-summary")), "m")
    assert from_yaml == from_json == load_ticket(example_path("support-summary"))


def test_durations_are_milliseconds_inside() -> None:
    ticket = load_ticket(example_path("support-summary"))
    latency = ticket.gate("p95-latency")
    assert latency.kind == "latency_regression"
    assert (latency.window, latency.baseline_window, latency.sustained) == (1_800_000, 604_800_000, 1_800_000)
    assert latency.steps[0].wait == 900_000 and latency.steps[1].wait is None
    assert ticket.canary.release_window == 86_400_000


def test_json_with_a_byte_order_mark() -> None:
    data = b"\xef\xbb\xbf" + orjson.dumps(example_data("refund-drafting"))
    assert load_ticket_bytes(data, "m") == load_ticket(example_path("refund-drafting"))


def test_json_problems_have_lines_too() -> None:
    doc = replaced(example_data("support-summary"), ("revision",), "3")
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    result = check_ticket_bytes(text, "m.json")
    assert isinstance(result, list)
    [problem] = result
    assert problem.field == "revision"
    assert text.decode().splitlines()[problem.line - 1].strip().startswith('"revision"')


def test_json_that_does_not_parse_names_its_line() -> None:
    result = check_ticket_bytes(b'{\n"ticket": "REL-1",\n"revision": 1,,\n}', "m.json")
    assert isinstance(result, list)
    assert result[0].line == 3 and result[0].message.startswith("not valid JSON")


def test_a_yaml_flow_mapping_is_not_mistaken_for_json() -> None:
    result = check_ticket_bytes(b"{format: rollwatch.release-ticket/v1, ticket: REL-1}", "m")
    assert isinstance(result, list)
    assert "revision" in {p.field for p in result}


def test_yaml_syntax_error_reports_its_line() -> None:
    text = _support_yaml().replace("  start_percent: 5", "  start_percent: [5", 1)
    [(line, field, message)] = _problems(text)
    assert field == "" and message == "not valid YAML: while parsing a flow sequence; expected ',' or ']', but got ':'"
    assert text.splitlines()[line - 1] == "  duration: 60m"  # where the unclosed "[" is noticed


def test_core_schema_scalars() -> None:
    data, _ = read_yaml("a: no\nb: 1e-3\nc: 010\nd: 2026-04-10\ne: on\nf: 0x1F\ng: ~\nh: False\n")
    assert data == {"a": "no", "b": 0.001, "c": 10, "d": "2026-04-10", "e": "on", "f": 31, "g": None, "h": False}


def test_yes_is_not_a_boolean_so_a_bool_field_says_so() -> None:
    text = _support_yaml().replace("    require_sample: true", "    require_sample: yes", 1)
    [(line, field, message)] = _problems(text)
    assert field == "gates[5].require_sample"
    assert message == "must be true or false, got a string ('yes')"
    assert text.splitlines()[line - 1].strip() == "require_sample: yes"


def test_duplicate_keys_are_reported_even_when_values_agree() -> None:
    text = _support_yaml().replace("revision: 3\n", "revision: 3\nrevision: 3\n", 1)
    assert _problems(text) == [(7, "revision", "duplicate key (first on line 6); only the last value would be used")]


def test_null_is_not_a_way_to_leave_a_field_out() -> None:
    text = _support_yaml().replace("  region: us-east-1\n", "  region:\n", 1)
    assert _problems(text) == [(17, "control.region", "must not be null; leave the field out instead")]


def test_missing_fields_point_at_their_parent() -> None:
    text = _support_yaml().replace("    min_samples: 1000\n", "", 1)
    [(line, field, message)] = _problems(text)
    assert (field, message) == ("gates[2].min_samples", "is required")
    assert text.splitlines()[line - 1].strip() == "- name: cost-per-task"  # the gate that lacks it


def test_union_tag_problems_name_the_tag_field() -> None:
    text = _support_yaml().replace("    action: {type: freeze_rollout}\n", "    action: {kind: freeze_rollout}\n", 1)
    problems = _problems(text)
    assert ("gates[10].action.type", "is required (one of an action or detector type)") in [
        (f, m) for _, f, m in problems
    ]
    assert ("gates[10]", "needs an action or a ladder") not in [(f, m) for _, f, m in problems]


def test_many_problems_in_one_gate_are_all_reported() -> None:
    text = _support_yaml().replace("    window_calls: 200\n", "    window_calls: many\n", 1)
    text = text.replace("    rate_above: 0.01 ", "    rate_above: 2 ", 1)
    text = text.replace("    control_rate_below: 0.002", "    speed: fast\n    control_rate_below: 0.002", 1)
    assert [f for _, f, _ in _problems(text)] == ["gates[0].window_calls", "gates[0].rate_above", "gates[0].speed"]


def test_empty_document_and_non_mapping() -> None:
    assert _problems("") == [(1, "", "the document is empty")]
    assert _problems("# only a comment\n") == [(1, "", "the document is empty")]
    assert _problems("- a\n- b\n") == [(1, "", "a ticket must be a mapping of fields, got a list")]


def test_two_documents_are_refused() -> None:
    [(line, _, message)] = _problems("ticket: a\n---\nticket: b\n")
    assert line == 2 and "expected a single document" in message


def test_not_utf8_names_the_line() -> None:
    result = check_ticket_bytes(b"ticket: REL-1\nworkflow: caf\xe9\n", "m")
    assert isinstance(result, list)
    assert (result[0].line, result[0].message) == (2, "not UTF-8 text (byte 27)")


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = check_ticket(missing)
    assert isinstance(result, list)
    assert result[0].file == str(missing) and result[0].message.startswith("cannot read the file")


def test_data_without_lines_reports_line_zero() -> None:
    doc = replaced(example_data("support-summary"), ("canary", "hold"), "soon")
    result = check_ticket_data(doc, "kafka:releases/0@17")
    assert isinstance(result, list)
    [problem] = result
    assert (problem.file, problem.line, problem.field) == ("kafka:releases/0@17", 0, "canary.hold")
    assert str(problem).startswith("kafka:releases/0@17: canary.hold: must be a whole number and one unit")


def test_ticket_error_is_a_rollwatch_error_carrying_every_problem() -> None:
    doc = replaced(replaced(example_data("order-agent"), ("revision",), 0), ("workflow",), "")
    with pytest.raises(RollwatchError) as caught:
        validate_ticket_data(doc)
    assert isinstance(caught.value, TicketError)
    assert [p.field for p in caught.value.problems] == ["revision", "workflow"]
    assert not caught.value.retriable


def test_safe_loading_refuses_python_tags() -> None:
    [(line, _, message)] = _problems("ticket: !!python/object/apply:os.system ['true']\n")
    assert line == 1 and "could not determine a constructor" in message
    with pytest.raises(yaml.YAMLError):
        yaml.load("a: !!python/name:os.system", Loader=yaml.SafeLoader)


def test_format_loc() -> None:
    assert format_loc(("gates", 2, "ladder", 0, "wait")) == "gates[2].ladder[0].wait"
    assert (
        format_loc(("gates", 0, "action", "flags", "ai.tools.enabled")) == 'gates[0].action.flags["ai.tools.enabled"]'
    )
    assert format_loc(()) == ""


def test_a_field_of_another_kind_names_the_kind_instead_of_suggesting_itself() -> None:
    text = _support_yaml().replace("    require_sample: true\n", "    require_sample: true\n    direction: above\n", 1)
    assert [(f, m) for _, f, m in _problems(text)] == [("gates[5].direction", "is not a field when kind is complaints")]
