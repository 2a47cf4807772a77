"""Ticket documents for the tests: the examples as data, and ways to bend them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TypeVar, cast

from rollwatch.tickets.model import Ticket
from rollwatch.tickets.yamlsource import Loc, read_yaml

ROOT: Final = Path(__file__).resolve().parents[2]
EXAMPLES: Final = ROOT / "examples"
GOOD_EXAMPLES: Final = ("support-summary", "order-agent", "refund-drafting")

T = TypeVar("T")


def example_path(name: str) -> Path:
    return EXAMPLES / f"{name}.ticket.yaml"


def example_data(name: str) -> dict[str, Any]:
    data, _ = read_yaml(example_path(name).read_text())
    assert isinstance(data, dict)
    return data


def example_ticket(name: str) -> Ticket:
    return Ticket.model_validate(example_data(name))


def get(doc: Any, loc: Loc) -> Any:
    for part in loc:
        doc = doc[part]
    return doc


def replaced(doc: T, loc: Loc, value: Any) -> T:
    """A deep copy of ``doc`` with the value at ``loc`` replaced."""
    out = copy.deepcopy(doc)
    if not loc:
        return cast(T, copy.deepcopy(value))
    get(out, loc[:-1])[loc[-1]] = copy.deepcopy(value)
    return out


def removed(doc: T, loc: Loc) -> T:
    """A deep copy of ``doc`` without the key or item at ``loc``."""
    out = copy.deepcopy(doc)
    del get(out, loc[:-1])[loc[-1]]
    return out


def locations(doc: Any, loc: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    """Every node below the root with its path, parents before children."""
    items: list[tuple[str | int, Any]]
    if isinstance(doc, dict):
        items = list(doc.items())
    elif isinstance(doc, list):
        items = list(enumerate(doc))
    else:
        return
    for key, value in items:
        yield (*loc, key), value
        yield from locations(value, (*loc, key))
