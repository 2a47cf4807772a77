"""Cross-part rules: each one fires on a targeted edit of a valid ticket, and only it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rollwatch.tickets import check_ticket_data
from tests.tickets.documents import example_data, removed, replaced

Edit = Callable[[dict[str, Any]], dict[str, Any]]


def _set(*pairs: tuple[tuple[str | int, ...], Any]) -> Edit:
    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        for loc, value in pairs:
            doc = replaced(doc, loc, value)
        return doc

    return edit


def _drop(loc: tuple[str | int, ...]) -> Edit:
    return lambda doc: removed(doc, loc)


def _same_behaviour(doc: dict[str, Any]) -> dict[str, Any]:
    return replaced(doc, ("candidate",), {**doc["control"], "route": doc["candidate"]["route"]})


def _no_tools(doc: dict[str, Any]) -> dict[str, Any]:
    return replaced(
        removed(doc, ("control", "tool_schema_version")),
        ("candidate",),
        {k: v for k, v in doc["candidate"].items() if k != "tool_schema_version"},
    )


GATE = ("gates",)
CASES: list[tuple[str, str, Edit, list[tuple[str, str]]]] = [
    (
        "support-summary",
        "same route name",
        _set((("candidate", "route"), "support-summary/stable")),
        [("candidate.route", "must differ from control.route ('support-summary/stable')")],
    ),
    ("support-summary", "nothing changes", _same_behaviour, [("candidate", "is the control route under another name")]),
    (
        "support-summary",
        "impossible approval date",
        _set((("control", "approved_on"), "2026-02-30")),
        [("control.approved_on", "'2026-02-30' is not a calendar date")],
    ),
    (
        "support-summary",
        "impossible corpus cutoff",
        _set((("candidate", "retrieval", "corpus_cutoff"), "2026-13-01")),
        [("candidate.retrieval.corpus_cutoff", "is not a calendar date")],
    ),
    (
        "support-summary",
        "steps not starting at start_percent",
        _set((("canary", "promotion", "percents"), [10, 25, 100])),
        [("canary.promotion.percents[0]", "must equal canary.start_percent (5)")],
    ),
    (
        "support-summary",
        "steps going down",
        _set((("canary", "promotion", "percents"), [5, 25, 10, 100])),
        [("canary.promotion.percents[2]", "must be above the step before it (25)")],
    ),
    (
        "order-agent",
        "doubling ratios crossed",
        _set((("canary", "promotion", "rollback_below_ratio"), 0.995)),
        [("canary.promotion.rollback_below_ratio", "must be below promote_at_ratio (0.99)")],
    ),
    (
        "order-agent",
        "doubling cap below start",
        _set((("canary", "start_percent"), 10), (("canary", "promotion", "max_percent"), 5)),
        [("canary.promotion.max_percent", "must be at least canary.start_percent (10)")],
    ),
    (
        "support-summary",
        "duplicate gate name",
        _set(((*GATE, 3, "name"), "json-failures")),
        [("gates[3].name", "'json-failures' is already the name of gates[0]")],
    ),
    (
        "support-summary",
        "ladder rung without wait",
        _drop((*GATE, 1, "ladder", 0, "wait")),
        [("gates[1].ladder[0]", "needs a wait")],
    ),
    (
        "support-summary",
        "segment and by_segment",
        _set(((*GATE, 4, "segment"), "enterprise")),
        [("gates[4].by_segment", "cannot be true when segment is set")],
    ),
    (
        "support-summary",
        "control rate above candidate rate",
        _set(((*GATE, 0, "control_rate_below"), 0.02)),
        [("gates[0].control_rate_below", "must not exceed rate_above (0.01)")],
    ),
    (
        "support-summary",
        "min_samples beyond the call window",
        _set(((*GATE, 0, "min_samples"), 201)),
        [("gates[0].min_samples", "cannot exceed window_calls (200)")],
    ),
    (
        "support-summary",
        "min_samples beyond the task window",
        _set(((*GATE, 2, "min_samples"), 2000)),
        [("gates[2].min_samples", "cannot exceed window_tasks (1000)")],
    ),
    (
        "support-summary",
        "min_samples beyond the review window",
        _set(((*GATE, 3, "min_samples"), 500)),
        [("gates[3].min_samples", "cannot exceed window_reviews (200)")],
    ),
    (
        "support-summary",
        "min_samples beyond the request window",
        _set(((*GATE, 4, "min_samples"), 501)),
        [("gates[4].min_samples", "cannot exceed window_requests (500)")],
    ),
    (
        "support-summary",
        "a count window no route keeps",
        _set(((*GATE, 0, "window_calls"), 2_000_000)),
        [("gates[0].window_calls", "cannot exceed 1,000,000: a route keeps no longer count window")],
    ),
    (
        "support-summary",
        "more complaints than a route can count",
        _set(((*GATE, 5, "confirmed_at_least"), 1_000_001)),
        [("gates[5].confirmed_at_least", "cannot exceed 1,000,000")],
    ),
    (
        "support-summary",
        "baseline shorter than window",
        _set(((*GATE, 1, "baseline_window"), "10m")),
        [("gates[1].baseline_window", "must be at least window (30m)")],
    ),
    (
        "support-summary",
        "cost gate without estimate",
        _drop(("estimates",)),
        [("gates[2].kind", "needs estimates.cost_per_successful_task_usd")],
    ),
    (
        "support-summary",
        "error rate checked downwards",
        _set(((*GATE, 6, "direction"), "below")),
        [("gates[6].direction", "must be above for error_rate: a higher error rate is worse")],
    ),
    (
        "support-summary",
        "latency ceiling checked downwards",
        _set(((*GATE, 7, "direction"), "below")),
        [("gates[7].direction", "must be above for p95_latency_ms")],
    ),
    (
        "support-summary",
        "seed-2 quality bug",
        _set(((*GATE, 8, "direction"), "above")),
        [("gates[8].direction", "must be below for avg_quality_score: lower quality is worse")],
    ),
    (
        "support-summary",
        "cost ceiling checked downwards",
        _set(((*GATE, 9, "direction"), "below")),
        [("gates[9].direction", "must be above for cost_per_request")],
    ),
    (
        "support-summary",
        "error rate as a percent",
        _set(((*GATE, 6, "value"), 5)),
        [("gates[6].value", "is a rate and must be at most 1 (0.05 = 5%), got 5")],
    ),
    (
        "support-summary",
        "quality drift upwards",
        _set(((*GATE, 10, "direction"), "increase")),
        [("gates[10].direction", "must be decrease for quality")],
    ),
    (
        "order-agent",
        "latency drift downwards",
        _set(((*GATE, 4, "direction"), "decrease")),
        [("gates[4].direction", "must be increase for latency")],
    ),
    (
        "order-agent",
        "kswin statistic as large as its window",
        _set(((*GATE, 4, "detector"), {"type": "kswin", "alpha": 0.005, "window_size": 50, "stat_size": 50})),
        [("gates[4].detector.stat_size", "must be smaller than window_size")],
    ),
    (
        "refund-drafting",
        "ladder rung nobody may issue",
        _set(
            (("authority", "incident_commander"), ["freeze_rollout"]),
            ((*GATE, 4, "ladder", 1, "action"), {"type": "disable_tools"}),
        ),
        [
            ("gates[4].ladder[1].action.type", "no role in authority may issue disable_tools"),
            ("gates[4].ladder[1].action.type", "neither route declares a tool_schema_version"),
        ],
    ),
    (
        "support-summary",
        "override no role covers",
        _set(
            (("authority", "incident_commander"), ["freeze_rollout"]),
            (("first_rollback", 0), {"type": "freeze_rollout", "flags": {"ai.tools.enabled": False}}),
        ),
        [("first_rollback[0].type", "no role in authority may issue freeze_rollout with these flag overrides")],
    ),
    (
        "support-summary",
        "gate action nobody holds",
        _set(
            (("authority", "incident_commander"), ["freeze_rollout"]),
            (("authority", "risk_owner"), ["set_action_mode"]),
        ),
        [("gates[4].action.type", "no role in authority may issue disable_segment")],
    ),
    (
        "order-agent",
        "override turning tools on",
        _set(((*GATE, 2, "action", "flags"), {"ai.tools.enabled": True})),
        [('gates[2].action.flags["ai.tools.enabled"]', "a rollback may not turn tool execution on")],
    ),
    (
        "order-agent",
        "override back to auto",
        _set(((*GATE, 2, "action", "flags"), {"ai.action.mode": "auto"})),
        [('gates[2].action.flags["ai.action.mode"]', "a rollback may not switch actions to auto")],
    ),
    (
        "support-summary",
        "override contradicting its action",
        _set(((*GATE, 3, "action", "flags"), {"ai.action.mode": "review"})),
        [
            (
                'gates[3].action.flags["ai.action.mode"]',
                "contradicts the set_action_mode action, which sets it to 'draft'",
            )
        ],
    ),
    (
        "support-summary",
        "reduce_rollout contradicted",
        _set(((*GATE, 2, "action", "flags"), {"ai.rollout.percent": 5})),
        [('gates[2].action.flags["ai.rollout.percent"]', "contradicts the reduce_rollout action, which sets it to 1")],
    ),
    (
        "support-summary",
        "disable_tools without tools",
        _set(((*GATE, 7, "action"), {"type": "disable_tools"})),
        [("gates[7].action.type", "neither route declares a tool_schema_version")],
    ),
    (
        "order-agent",
        "disable_tools after tools removed",
        _no_tools,
        [
            ("first_rollback[0].type", "neither route declares"),
            ("gates[0].ladder[0].action.type", "neither route declares"),
            ("gates[1].ladder[0].action.type", "neither route declares"),
        ],
    ),
    (
        "support-summary",
        "worker named like a person",
        _set((("owners", "automation"), "maya.chen")),
        [("owners.automation", "must be a service principal")],
    ),
    (
        "support-summary",
        "unknown message key",
        _set((("customer_messages", "on_action", "freeze_rollout"), "paused")),
        [("customer_messages.on_action.freeze_rollout", "'paused' is neither a built-in message")],
    ),
    (
        "support-summary",
        "slow restore",
        _set((("rollback_objective", "restore_within"), "16m")),
        [("rollback_objective.restore_within", "must be 15m or less")],
    ),
    (
        "support-summary",
        "automation slower than restore",
        _set((("rollback_objective", "reduce_automation_within"), "20m")),
        [("rollback_objective.reduce_automation_within", "must not be slower than restore_within")],
    ),
]


@pytest.mark.parametrize(("example", "name", "edit", "expected"), CASES, ids=[c[1] for c in CASES])
def test_rule_fires_alone(example: str, name: str, edit: Edit, expected: list[tuple[str, str]]) -> None:
    result = check_ticket_data(edit(example_data(example)), "t")
    assert isinstance(result, list), f"{name}: accepted"
    assert sorted(p.field for p in result) == sorted(field for field, _ in expected), result
    for field, text in expected:
        assert any(p.field == field and text in p.message for p in result), (field, text, result)


def test_custom_message_keys_count_as_existing() -> None:
    doc = example_data("support-summary")
    doc["customer_messages"]["on_action"]["freeze_rollout"] = "paused"
    doc["customer_messages"]["texts"] = {"paused": "We paused the rollout of an improvement."}
    assert not isinstance(check_ticket_data(doc), list)


def test_relations_are_checked_even_where_structure_fails() -> None:
    doc = example_data("support-summary")
    doc["gates"][0]["window_calls"] = "many"  # structure fails in this gate ...
    doc["gates"][0]["ladder"] = [{"action": {"type": "freeze_rollout"}}]  # ... and it has both action and ladder
    doc["owners"]["automation"] = "maya.chen"  # a relation elsewhere
    result = check_ticket_data(doc)
    assert isinstance(result, list)
    assert sorted((p.field, p.message) for p in result) == [
        ("gates[0]", "has both action and ladder; keep one"),
        ("gates[0].window_calls", "must be a whole number, got a string ('many')"),
        ("owners.automation", "must be a service principal, not one of the people named for other roles"),
    ]
