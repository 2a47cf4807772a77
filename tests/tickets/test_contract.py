"""The pydantic models and schemas/release-ticket.v1.json accept and reject the same documents.

Three layers: every model has a ``$defs`` entry with the same fields and required
fields; a handpicked corpus of whole tickets gets the same verdict from both; and every
section of the examples is bent at every leaf (other types, boundary numbers, removed
keys, unknown keys) and checked against its sub-schema, which keeps the run fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, Final

import jsonschema
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from rollwatch.tickets.actions import Action
from rollwatch.tickets.fieldtypes import StrictModel
from rollwatch.tickets.gatebase import GateBase, GuardedGate
from rollwatch.tickets.gates import Gate
from rollwatch.tickets.load import check_ticket_data
from rollwatch.tickets.model import (
    Authority,
    Canary,
    CustomerMessages,
    Estimates,
    Owners,
    RollbackObjective,
    Route,
    Ticket,
)
from tests.conftest import SCHEMAS, schema_validator
from tests.tickets.documents import GOOD_EXAMPLES, example_data, locations, removed, replaced

SCHEMA: Final[dict[str, Any]] = json.loads((SCHEMAS / "release-ticket.v1.json").read_text())
TICKET_SCHEMA: Final = schema_validator("release-ticket.v1.json")

MUTANTS: Final[list[Any]] = [None, True, 0, 1, -1, 3.0, 0.5, 150, "", "x", "30m", "0s", [], {}]
"""Replacement values chosen to cross every type and range boundary the ticket uses."""


ABSTRACT: Final = (StrictModel, GateBase, GuardedGate)
"""Bases no document is validated against on its own: the schema has no ``$defs`` entry for them."""


def _models() -> Iterator[type[BaseModel]]:
    pending: list[type[BaseModel]] = [StrictModel]
    while pending:
        model = pending.pop()
        pending += model.__subclasses__()
        if not model.__name__.startswith("_") and model not in ABSTRACT:
            yield model


MODELS: Final = sorted(_models(), key=lambda m: m.__name__)


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_every_model_has_a_schema_def_with_the_same_fields(model: type[BaseModel]) -> None:
    node = SCHEMA if model is Ticket else SCHEMA["$defs"][model.__name__]
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    assert set(node["properties"]) == set(fields)
    assert set(node["required"]) == {name for name, info in fields.items() if info.is_required()}
    assert node["additionalProperties"] is False


def _python_ok(validate: Callable[[Any], object], doc: Any) -> bool:
    try:
        validate(doc)
    except ValidationError:
        return False
    return True


def _assert_agree(validator: jsonschema.Draft202012Validator, validate: Callable[[Any], object], doc: Any) -> bool:
    python_ok = _python_ok(validate, doc)
    if validator.is_valid(doc) != python_ok:
        schema_errors = [e.message for e in validator.iter_errors(doc)]
        try:
            validate(doc)
            python_says = "valid"
        except ValidationError as exc:
            python_says = str(exc)
        pytest.fail(f"schema says {schema_errors or 'valid'}; pydantic says {python_says}; document {doc!r}")
    return python_ok


# ---------------------------------------------------------------------------------------------- whole tickets


def _minimal() -> dict[str, Any]:
    doc = example_data("refund-drafting")
    for key in ("fallbacks",):
        del doc[key]
    for arm in ("control", "candidate"):
        for key in ("account", "region", "retrieval", "approved_on"):
            doc[arm].pop(key, None)
    doc["gates"] = doc["gates"][:1]
    del doc["rollback_objective"]["reduce_automation_within"]
    return doc


MINIMAL: Final = _minimal()

ACCEPTED: Final[list[tuple[str, dict[str, Any]]]] = [
    *((name, example_data(name)) for name in GOOD_EXAMPLES),
    ("minimal", MINIMAL),
    ("revision as a whole float", replaced(MINIMAL, ("revision",), 2.0)),
    ("grants all round", replaced(MINIMAL, ("authority",), {role: "all" for role in MINIMAL["authority"]})),
    ("empty grants", replaced(MINIMAL, ("authority", "product_owner"), [])),
    ("fractional percent", replaced(MINIMAL, ("canary", "start_percent"), 0.5)),
    ("no offline run", replaced(MINIMAL, ("canary", "offline_tickets"), 0)),
    ("hold of zero", replaced(MINIMAL, ("canary", "hold"), "0s")),
    ("every fallback", replaced(MINIMAL, ("fallbacks",), {p: {} for p in ("previous_route", "batch", "human_review")})),
    (
        "custom message text",
        replaced(MINIMAL, ("customer_messages", "texts"), {"refund_delayed": "Refunds are slower."}),
    ),
    (
        "all flag overrides",
        replaced(
            MINIMAL,
            ("first_rollback", 0, "flags"),
            {
                "ai.route.provider": "x",
                "ai.route.mode": "batch",
                "ai.prompt.version": "p1",
                "ai.tools.enabled": False,
                "ai.action.mode": "review",
                "ai.rollout.percent": 0,
            },
        ),
    ),
    ("named segments", replaced(MINIMAL, ("first_rollback", 1, "segments"), ["a", "b"])),
    # Structurally fine, refused only by the semantic layer (see test_semantic_only_problems_pass_the_schema).
    ("same route names", replaced(MINIMAL, ("candidate", "route"), MINIMAL["control"]["route"])),
    (
        "quality threshold the wrong way",
        replaced(
            MINIMAL,
            ("gates", 0),
            {
                "name": "q",
                "kind": "threshold",
                "metric": "avg_quality_score",
                "direction": "above",
                "value": 3.0,
                "window": "60m",
                "min_samples": 50,
                "action": {"type": "restore_route"},
            },
        ),
    ),
]

REJECTED: Final[list[tuple[str, Any]]] = [
    ("a list", [MINIMAL]),
    ("a string", "ticket"),
    ("unknown top-level field", replaced(MINIMAL, ("owner",), "x")),
    ("other format", replaced(MINIMAL, ("format",), "rollwatch.release-ticket/v2")),
    ("revision zero", replaced(MINIMAL, ("revision",), 0)),
    ("revision true", replaced(MINIMAL, ("revision",), True)),
    ("revision 1.5", replaced(MINIMAL, ("revision",), 1.5)),
    ("no gates", replaced(MINIMAL, ("gates",), [])),
    ("no first rollback", replaced(MINIMAL, ("first_rollback",), [])),
    ("no evidence", replaced(MINIMAL, ("evidence",), [])),
    ("evidence twice", replaced(MINIMAL, ("evidence",), ["trace_ids", "trace_ids"])),
    ("estimates null", replaced(MINIMAL, ("estimates",), None)),
    ("unknown fallback path", replaced(MINIMAL, ("fallbacks",), {"pray": {}})),
    ("grant twice", replaced(MINIMAL, ("authority", "product_owner"), ["freeze_rollout", "freeze_rollout"])),
    ("grant some", replaced(MINIMAL, ("authority", "product_owner"), "some")),
    ("unknown action key", replaced(MINIMAL, ("customer_messages", "on_action"), {"reboot": "known_issue"})),
    ("bad message key", replaced(MINIMAL, ("customer_messages", "texts"), {"Known Issue": "x"})),
    ("compound duration", replaced(MINIMAL, ("canary", "duration"), "1h30m")),
    ("duration with leading zero", replaced(MINIMAL, ("canary", "duration"), "05m")),
    ("zero duration where positive", replaced(MINIMAL, ("canary", "release_window"), "0d")),
    ("bare number duration", replaced(MINIMAL, ("canary", "duration"), 60)),
    ("date with slashes", replaced(MINIMAL, ("control", "approved_on"), "2026/04/10")),
    ("disable_segment for all", replaced(MINIMAL, ("first_rollback", 1, "segments"), "all")),
    ("segments twice", replaced(MINIMAL, ("first_rollback", 1, "segments"), ["a", "a"])),
    ("no segments", replaced(MINIMAL, ("first_rollback", 1, "segments"), [])),
    ("rollout override above 100", replaced(MINIMAL, ("first_rollback", 0, "flags"), {"ai.rollout.percent": 101})),
    ("unknown flag", replaced(MINIMAL, ("first_rollback", 0, "flags"), {"ai.model": "x"})),
    ("action and ladder", replaced(MINIMAL, ("gates", 0, "ladder"), [{"action": {"type": "freeze_rollout"}}])),
    ("neither action nor ladder", removed(MINIMAL, ("gates", 0, "action"))),
    ("empty ladder", replaced(removed(MINIMAL, ("gates", 0, "action")), ("gates", 0, "ladder"), [])),
    ("guard without alpha", replaced(MINIMAL, ("gates", 0, "guard"), {"method": "msprt"})),
    ("alpha on no guard", replaced(MINIMAL, ("gates", 0, "guard"), {"method": "none", "alpha": 0.05})),
]


@pytest.mark.parametrize(("name", "doc"), ACCEPTED, ids=[n for n, _ in ACCEPTED])
def test_both_accept(name: str, doc: dict[str, Any]) -> None:
    assert _assert_agree(TICKET_SCHEMA, Ticket.model_validate, doc), name


@pytest.mark.parametrize(("name", "doc"), REJECTED, ids=[n for n, _ in REJECTED])
def test_both_reject(name: str, doc: Any) -> None:
    assert not _assert_agree(TICKET_SCHEMA, Ticket.model_validate, doc), name


def test_semantic_only_problems_pass_the_schema() -> None:
    for name in ("same route names", "quality threshold the wrong way"):
        doc = dict(ACCEPTED)[name]
        assert TICKET_SCHEMA.is_valid(doc)
        assert isinstance(check_ticket_data(doc), list), name


@pytest.mark.parametrize("key", sorted(MINIMAL), ids=str)
def test_top_level_fields_removed_or_retyped(key: str) -> None:
    _assert_agree(TICKET_SCHEMA, Ticket.model_validate, removed(MINIMAL, (key,)))
    for value in MUTANTS:
        _assert_agree(TICKET_SCHEMA, Ticket.model_validate, replaced(MINIMAL, (key,), value))


# ---------------------------------------------------------------------------------------------- sections


def _sub_validator(node: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**node, "$defs": SCHEMA["$defs"]})


def _validate_with(target: type[BaseModel] | TypeAdapter[Any]) -> Callable[[Any], object]:
    return target.validate_python if isinstance(target, TypeAdapter) else target.model_validate


SECTIONS: Final[dict[str, tuple[dict[str, Any], type[BaseModel] | TypeAdapter[Any]]]] = {
    "gate": ({"$ref": "#/$defs/gate"}, TypeAdapter(Gate)),
    "action": ({"$ref": "#/$defs/action"}, TypeAdapter(Action)),
    "route": ({"$ref": "#/$defs/Route"}, Route),
    "canary": ({"$ref": "#/$defs/Canary"}, Canary),
    "estimates": ({"$ref": "#/$defs/Estimates"}, Estimates),
    "owners": ({"$ref": "#/$defs/Owners"}, Owners),
    "authority": ({"$ref": "#/$defs/Authority"}, Authority),
    "customer_messages": ({"$ref": "#/$defs/CustomerMessages"}, CustomerMessages),
    "rollback_objective": ({"$ref": "#/$defs/RollbackObjective"}, RollbackObjective),
}


_OPAQUE: Final = frozenset({"action", "ladder"})
"""Inside a gate these are actions, bent on their own in the ``action`` section."""


def _shape(item: Any) -> str:
    """What makes two fragments exercise different schema branches: keys, tags, nesting."""
    if isinstance(item, dict):
        tags = {k: v for k, v in item.items() if k in ("kind", "type", "method", "rule")}
        nested = {k: _shape(v) for k, v in item.items() if k not in _OPAQUE}
        return json.dumps([sorted(item), tags, nested], sort_keys=True)
    if isinstance(item, list):
        return json.dumps(sorted({_shape(v) for v in item}))
    return type(item).__name__


def _fragments(section: str) -> list[Any]:
    """Instances of ``section`` across the examples, one per distinct shape."""
    found: dict[str, Any] = {}
    for name in GOOD_EXAMPLES:
        doc = example_data(name)
        if section == "gate":
            items = doc["gates"]
        elif section == "action":
            items = list(doc["first_rollback"]) + [
                a
                for g in doc["gates"]
                for a in ([g["action"]] if "action" in g else [s["action"] for s in g["ladder"]])
            ]
        elif section == "route":
            items = [doc["control"], doc["candidate"]]
        else:
            items = [doc[section]] if section in doc else []
        for item in items:
            found.setdefault(_shape(item), item)
    return list(found.values())


def _bent(fragment: Any) -> Iterator[Any]:
    """The fragment with each leaf retyped, each key dropped, an unknown key added to each mapping."""
    yield replaced(fragment, ("zz_unknown",), 1) if isinstance(fragment, dict) else fragment
    for loc, value in locations(fragment):
        yield removed(fragment, loc)
        if isinstance(value, dict):
            yield replaced(fragment, (*loc, "zz_unknown"), 1)
        if isinstance(value, list) and value:
            yield replaced(fragment, loc, [*value, value[0]])
        for mutant in MUTANTS:
            if mutant != value or type(mutant) is not type(value):
                yield replaced(fragment, loc, mutant)


@pytest.mark.parametrize("section", SECTIONS)
def test_sections_bent_everywhere_get_the_same_verdict(section: str) -> None:
    node, target = SECTIONS[section]
    validator, validate = _sub_validator(node), _validate_with(target)
    fragments = _fragments(section)
    assert fragments
    verdicts = [_assert_agree(validator, validate, doc) for fragment in fragments for doc in _bent(fragment)]
    assert all(_assert_agree(validator, validate, f) for f in fragments)
    assert verdicts.count(False) > 0 and verdicts.count(True) > 0  # the corpus exercises both outcomes
