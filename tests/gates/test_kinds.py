"""Every gate kind the ticket schema names has every part in the registry, and nothing else is registered.

The parts are exercised, not just looked up: each kind's evaluator judges an example gate
of that kind on empty arms, its explanation words it, its semantic check runs, and its
window needs name real fields on both sides. The schema is read from the JSON file, not
from the code under test.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Any, Final, get_args

import pytest

from rollwatch.events import ComplaintEvent
from rollwatch.gates.engine import Engine, streams_config_for
from rollwatch.gates.evaluate import Arms, evaluate_gate
from rollwatch.gates.kinds import KINDS, AnyGate
from rollwatch.gates.kinds.schema_failure import SchemaFailureGate
from rollwatch.gates.kinds.spec import MAX_COUNT_WINDOW, WindowNeed
from rollwatch.gates.result import GateResult
from rollwatch.streams.config import StreamsConfig
from rollwatch.streams.errors import InvalidConfig
from rollwatch.tickets.gatebase import GateBase
from rollwatch.tickets.model import Ticket
from tests.conftest import SCHEMAS
from tests.gates.conftest import CANDIDATE, T0, WF, Traffic

SCHEMA: Final[dict[str, Any]] = json.loads((SCHEMAS / "release-ticket.v1.json").read_text())
GATE_NODE: Final = SCHEMA["$defs"]["gate"]
SCHEMA_KINDS: Final[list[str]] = GATE_NODE["properties"]["kind"]["enum"]
PARTS: Final = ("model", "evaluate", "windows", "explain", "check", "detected", "sustained")
COUNT_WINDOWS: Final = {f.name for f in dataclasses.fields(StreamsConfig) if f.type in ("int", int)}


def _then_refs() -> dict[str, str]:
    """kind -> the ``$defs`` record the schema validates a gate of that kind against."""
    refs = {}
    for branch in GATE_NODE["allOf"]:
        kind = branch["if"]["properties"]["kind"]["const"]
        refs[kind] = branch["then"]["$ref"].removeprefix("#/$defs/")
    return refs


def _example_gate(ticket: Ticket, kind: str) -> AnyGate:
    return next(g for g in ticket.gates if g.kind == kind)


def test_the_registry_holds_exactly_the_schema_kinds() -> None:
    assert sorted(KINDS) == sorted(SCHEMA_KINDS)
    assert sorted(_then_refs()) == sorted(SCHEMA_KINDS)
    assert {KINDS[k].model for k in KINDS} == set(get_args(AnyGate))


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_every_schema_kind_has_every_part(kind: str, ticket: Ticket) -> None:
    spec = KINDS[kind]
    assert spec.kind == kind
    parts = spec.parts()
    assert tuple(parts) == PARTS
    assert all(callable(part) for part in parts.values())
    # The record: the schema's record of that kind, with that kind as its only value.
    assert spec.model.__name__ == _then_refs()[kind]
    assert issubclass(spec.model, GateBase)
    assert get_args(spec.model.model_fields["kind"].annotation) == (kind,)

    gate = _example_gate(ticket, kind)
    assert isinstance(gate, spec.model)

    # The evaluator: nothing to read is "insufficient", under the gate's own name and kind.
    result = spec.evaluate(gate, Arms(None, None, ticket, T0), T0)
    assert isinstance(result, GateResult)
    assert (result.gate, result.kind, result.state) == (gate.name, kind, "insufficient")
    assert result.needed

    # The windows: each names a count window of the route state and the gate field it is sized by.
    for need in spec.windows(gate):
        assert isinstance(need, WindowNeed)
        assert need.config in COUNT_WINDOWS, need
        assert need.field in spec.model.model_fields, need
        assert need.size == getattr(gate, need.field)

    # The explanation: a condition and the minimum evidence, in words.
    condition, needs = spec.explain(ticket, gate)
    assert condition and needs.startswith("at least ")

    # The semantic check: the example is a valid ticket, so its gate has no issue.
    assert list(spec.check(gate, ticket.estimates)) == []
    assert isinstance(spec.detected(gate), bool)
    assert spec.sustained(gate) >= 0


def test_kind_checks_see_their_own_fields(ticket: Ticket) -> None:
    """A broken field is reported by its kind's check, relative to the gate."""
    schema = _example_gate(ticket, "schema_failure")
    assert isinstance(schema, SchemaFailureGate)
    broken = schema.model_copy(update={"control_rate_below": schema.rate_above + 0.01})
    assert [loc for loc, _ in KINDS["schema_failure"].check(broken, ticket.estimates)] == [("control_rate_below",)]
    cost = _example_gate(ticket, "cost_per_task")
    assert [loc for loc, _ in KINDS["cost_per_task"].check(cost, None)] == [("kind",)]


def test_only_latency_waits_for_a_sustained_breach(ticket: Ticket) -> None:
    """The example's latency gate says ``sustained: 30m``; every other kind acts at once."""
    for gate in ticket.gates:
        expected = 30 * 60_000 if gate.kind == "latency_regression" else 0
        assert KINDS[gate.kind].sustained(gate) == expected, gate.name


def test_window_cap_is_the_route_states() -> None:
    """The semantic cap on count windows is the largest the route state accepts."""
    assert StreamsConfig(schema_window=MAX_COUNT_WINDOW).schema_window == MAX_COUNT_WINDOW
    with pytest.raises(InvalidConfig):
        StreamsConfig(schema_window=MAX_COUNT_WINDOW + 1)


def test_a_complaints_threshold_above_the_default_log_can_be_reached(ticket: Ticket) -> None:
    """The complaints kind's window needs widen the complaint log so a threshold of 100 is countable.

    With the route's default log (64 complaint times) the count would stop at 64 and the
    gate would never fire.
    """
    complaints = _example_gate(ticket, "complaints")
    gate = complaints.model_copy(update={"confirmed_at_least": 100, "require_sample": False})
    wide = ticket.model_copy(update={"gates": (gate,)})
    assert StreamsConfig().complaint_times < 100
    assert streams_config_for(wide).complaint_times == 100

    engine = Engine(WF)
    engine.install(wide)
    traffic = Traffic()
    traffic.state = engine.state
    traffic.calls("candidate", 20)
    for i in range(99):
        engine.state.apply(ComplaintEvent(f"c{i}", traffic.now + 1 + i, WF, CANDIDATE, True))
    now = traffic.now + 200
    arms = Arms(engine.state.candidate, engine.state.control, wide, T0)
    assert evaluate_gate(gate, arms, now).state == "healthy"
    engine.state.apply(ComplaintEvent("c99", traffic.now + 100, WF, CANDIDATE, True))
    assert evaluate_gate(gate, arms, now).state == "breached"


def test_sampled_complaints_widen_the_evidence_kept(ticket: Ticket) -> None:
    complaints = _example_gate(ticket, "complaints")
    gate = complaints.model_copy(update={"confirmed_at_least": 50, "require_sample": True})
    config = streams_config_for(ticket.model_copy(update={"gates": (gate,)}))
    assert (config.complaint_times, config.evidence_per_kind) == (StreamsConfig().complaint_times, 50)


IMPORT_FIRST: Final = (
    "rollwatch.gates.kinds",
    "rollwatch.gates.kinds.complaints",
    "rollwatch.gates.evaluate",
    "rollwatch.gates.result",
    "rollwatch.commands",
    "rollwatch.tickets",
    "rollwatch.tickets.fieldtypes",
    "rollwatch.tickets.load",
)


@pytest.mark.parametrize("module", IMPORT_FIRST)
def test_either_side_may_be_imported_first(module: str) -> None:
    """No import cycle between the ticket model and the kinds, whichever is imported first.

    Loading a ticket does not load the stream machinery (river and scipy take about a second).
    """
    code = (
        f"import {module}, sys\n"
        "from rollwatch.tickets.load import load_ticket_bytes\n"
        "assert 'rollwatch.streams.config' not in sys.modules, 'the ticket side loaded the streams'\n"
        "assert 'river' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
