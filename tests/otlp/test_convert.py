"""GenAI spans become the call events the README's mapping table promises; everything else is skipped or rejected."""

from __future__ import annotations

from typing import Final

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from rollwatch.events import CallEvent
from rollwatch.otlp import RouteBook, SpanNames, convert, decode_traces
from rollwatch.tickets.load import load_ticket
from tests.conftest import ROOT
from tests.otlp.spans import Attr, SpanSpec, otlp_json, otlp_proto, traces

TICKET: Final = load_ticket(ROOT / "examples" / "support-summary.ticket.yaml")
BOOK: Final = RouteBook.of(TICKET)
T0: Final = 1_780_000_000_000_000_000  # ns
TRACE: Final = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN: Final = bytes.fromhex("eee19b7ec3c1b174")


def books(workflow: str) -> RouteBook | None:
    return BOOK if workflow == "support-summary" else None


def genai(**attrs: Attr) -> SpanSpec:
    base: dict[str, Attr] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5-20250929",
        "gen_ai.response.model": "claude-sonnet-4-5-20250929",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.response.finish_reasons": ["stop"],
    }
    return SpanSpec(TRACE, SPAN, T0, T0 + 850_000_000, base | attrs)


RESOURCE: Final = {"service.name": "support-summary"}


def one(spec: SpanSpec, resource: dict[str, str] | None = None) -> CallEvent:
    result = convert(traces([(RESOURCE if resource is None else resource, [spec])]), books=books)
    assert not result.rejected, result.rejected
    assert len(result.calls) == 1
    return result.calls[0]


def test_a_genai_span_becomes_a_call_with_every_mapped_field() -> None:
    outcome: dict[str, Attr] = {
        "rollwatch.schema_valid": False,
        "rollwatch.task_success": True,
        "rollwatch.segment": "eu",
    }
    call = one(genai(**outcome))
    assert call == CallEvent(
        event_id="5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174",
        ts_ms=1_780_000_000_850,
        workflow="support-summary",  # service.name of the resource
        route="support-summary/candidate",  # the ticket's route whose model_id is the request model
        latency_ms=850.0,
        status="ok",
        schema_valid=False,
        safety_blocked=False,
        task_success=True,
        cost_usd=(1200 * 3.0 + 300 * 15.0) / 1e6,  # the candidate's pricing in the ticket
        segment="eu",
        trace_id="5b8efff798038103d269b633813fc60c",
        provider="anthropic",
        model="claude-sonnet-4-5-20250929",
        input_tokens=1200,
        output_tokens=300,
    )


def test_outcomes_the_span_does_not_carry_stay_unknown() -> None:
    call = one(genai())
    assert (call.schema_valid, call.task_success, call.quality_score) == (None, None, None)


def test_attributes_on_the_span_win_over_the_resource_and_the_ticket() -> None:
    call = one(
        genai(**{"rollwatch.workflow": "support-summary", "rollwatch.route": "support-summary/stable"}),
        {"service.name": "gateway", "rollwatch.arm": "control"},
    )
    assert (call.workflow, call.route, call.arm) == ("support-summary", "support-summary/stable", "control")


def test_status_comes_from_the_span_status_and_error_type() -> None:
    error = genai()
    error.status = Status.STATUS_CODE_ERROR
    assert one(error).status == "error"
    assert one(genai(**{"error.type": "rate_limit_exceeded"})).status == "error"
    assert one(genai(**{"error.type": "openai.APITimeoutError"})).status == "timeout"
    deadline = genai()
    deadline.status, deadline.status_message = Status.STATUS_CODE_ERROR, "Deadline exceeded after 30s"
    assert one(deadline).status == "timeout"


def test_cost_from_the_span_wins_and_unpriced_calls_are_counted() -> None:
    assert one(genai(**{"rollwatch.cost_usd": 0.5})).cost_usd == 0.5
    spec = genai(**{"rollwatch.workflow": "unticketed", "rollwatch.route": "r1"})
    result = convert(traces([(RESOURCE, [spec])]), books=books)
    assert [c.cost_usd for c in result.calls] == [0.0]
    assert result.unpriced == 1


def test_a_content_filter_finish_reason_is_a_safety_block_unless_the_span_says_otherwise() -> None:
    assert one(genai(**{"gen_ai.response.finish_reasons": ["content_filter"]})).safety_blocked is True
    attrs: dict[str, Attr] = {"gen_ai.response.finish_reasons": ["content_filter"], "rollwatch.safety_blocked": False}
    overruled = genai(**attrs)
    assert one(overruled).safety_blocked is False


def test_older_instrumentations_token_and_provider_names_are_read() -> None:
    spec = genai()
    for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.provider.name"):
        del spec.attributes[key]
    spec.attributes |= {"gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 4, "gen_ai.system": "x"}
    call = one(spec)
    assert (call.input_tokens, call.output_tokens, call.provider) == (10, 4, "x")


def test_other_spans_are_skipped() -> None:
    server = genai()
    server.kind = Span.SPAN_KIND_SERVER
    http = SpanSpec(TRACE, SPAN, T0, T0 + 1, {"http.request.method": "POST"})
    embeddings = genai(**{"gen_ai.operation.name": "embeddings"})
    result = convert(traces([(RESOURCE, [server, http, embeddings, genai()])]), books=books)
    assert (len(result.calls), result.skipped, result.rejected) == (1, 3, [])


def test_the_operations_that_count_are_configurable() -> None:
    names = SpanNames(operations=("chat", "embeddings"))
    result = convert(traces([(RESOURCE, [genai(**{"gen_ai.operation.name": "embeddings"})])]), names, books)
    assert len(result.calls) == 1


def test_attribute_names_are_configurable() -> None:
    names = SpanNames(workflow=("app.workflow",), route=("app.route",), arm=("app.arm",))
    spec = genai(**{"app.workflow": "wf", "app.route": "wf/a", "app.arm": "candidate"})
    result = convert(traces([({}, [spec])]), names)
    assert [(c.workflow, c.route, c.arm) for c in result.calls] == [("wf", "wf/a", "candidate")]


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"gen_ai.usage.input_tokens": "1200"}, "attributes.gen_ai.usage.input_tokens", "must be an integer"),
        ({"gen_ai.usage.output_tokens": -1}, "attributes.gen_ai.usage.output_tokens", "must be >= 0"),
        ({"rollwatch.schema_valid": "yes"}, "attributes.rollwatch.schema_valid", "must be a boolean"),
        ({"rollwatch.arm": "canary"}, "", "as telemetry field arm"),
        ({"gen_ai.request.model": "unknown-model", "gen_ai.response.model": "x"}, "attributes", "names no route"),
    ],
)
def test_a_malformed_genai_span_is_rejected_alone_with_its_field(
    change: dict[str, str | int], field: str, problem: str
) -> None:
    bad = genai(**change)
    result = convert(traces([(RESOURCE, [genai(), bad])]), books=books)
    assert len(result.calls) == 1
    [rejected] = result.rejected
    assert rejected.index == 1
    assert rejected.error.field == "resourceSpans[0].scopeSpans[0].spans[1]" + (f".{field}" if field else "")
    assert problem in rejected.error.problem
    assert rejected.workflow == "support-summary"
    assert b'"traceId":"5b8efff798038103d269b633813fc60c"' in rejected.raw


def test_bad_ids_times_and_a_missing_workflow_are_rejected() -> None:
    zero = genai()
    zero.trace_id = bytes(16)
    backwards = genai()
    backwards.end_ns = backwards.start_ns - 1
    result = convert(traces([({}, [zero, backwards, genai()])]), books=books)
    assert [(r.error.field.rsplit(".", 1)[-1], r.error.problem[:20]) for r in result.rejected] == [
        ("traceId", "must be 16 bytes, no"),
        ("endTimeUnixNano", "ends before it start"),
        ("attributes", "names no workflow: n"),
    ]


def test_two_routes_on_one_model_are_told_apart_by_prompt_version_or_not_at_all() -> None:
    same_model = RouteBook((TICKET.control, TICKET.candidate.model_copy(update={"model_id": TICKET.control.model_id})))
    model = TICKET.control.model_id
    assert same_model.match((model,), "support-summary-v15") == "support-summary/candidate"
    assert same_model.match((model,), None) is None
    assert BOOK.match((None, TICKET.control.model_id), None) == "support-summary/stable"


def test_both_encodings_decode_to_the_same_calls() -> None:
    data = traces([(RESOURCE, [genai(), genai(**{"error.type": "timeout"})])])
    from_proto = convert(decode_traces(otlp_proto(data)), books=books)
    from_json = convert(decode_traces(otlp_json(data)), books=books)
    assert from_proto.calls == from_json.calls
    assert [c.status for c in from_json.calls] == ["ok", "timeout"]
