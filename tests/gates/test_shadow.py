"""Shadow analysis: pairs by trace id, better/worse/same, the seed's promote rule."""

from __future__ import annotations

from rollwatch.events import Arm, CallEvent
from rollwatch.gates.engine import Engine
from rollwatch.gates.shadow import ShadowComparison
from rollwatch.tickets.model import Ticket


def call(event_id: str, arm: Arm, trace: str | None, quality: float | None) -> CallEvent:
    route = {"control": "support-summary/stable", "shadow": "support-summary/shadow"}[arm]
    return CallEvent(
        event_id,
        1_763_900_000_000,
        "support-summary",
        route,
        900.0,
        "ok",
        True,
        False,
        True,
        0.01,
        arm=arm,
        trace_id=trace,
        quality_score=quality,
    )


def test_counts_and_recommendation() -> None:
    shadow = ShadowComparison()
    pairs = [(4.0, 4.5), (4.0, 4.5), (4.0, 4.5), (4.0, 3.0), (4.0, 4.0)]
    for i, (served, candidate) in enumerate(pairs):
        shadow.update(call(f"s{i}", "control", f"t{i}", served))
        shadow.update(call(f"h{i}", "shadow", f"t{i}", candidate))
    summary = shadow.summary()
    assert (summary.better, summary.worse, summary.same, summary.unpaired) == (3, 1, 1, 0)
    assert summary.recommendation == "promote"  # 3 > 1.5 x 1


def test_keep_stable_when_not_clearly_better_and_unpaired_are_counted() -> None:
    shadow = ShadowComparison(capacity=2)
    for i in range(3):
        shadow.update(call(f"s{i}", "control", f"t{i}", 4.0))
    shadow.update(call("h0", "shadow", "t0", 5.0))  # t0 left the bounded map
    shadow.update(call("h1", "shadow", "t1", 5.0))
    shadow.update(call("h2", "shadow", "t2", 3.0))
    shadow.update(call("h3", "shadow", None, 5.0))
    summary = shadow.summary()
    assert (summary.better, summary.worse, summary.unpaired) == (1, 1, 2)
    assert summary.recommendation == "keep stable"  # 1 is not > 1.5 x 1


def test_engine_reports_shadow_and_checkpoints_it(ticket: Ticket) -> None:
    engine = Engine("support-summary")
    engine.install(ticket)
    engine.apply([call("s1", "control", "t1", 4.0), call("h1", "shadow", "t1", 4.8)])
    assert engine.status()["shadow"] == {"better": 1, "worse": 0, "same": 0, "unpaired": 0, "recommendation": "promote"}
    assert Engine.from_bytes(engine.to_bytes()).status()["shadow"] == engine.status()["shadow"]
