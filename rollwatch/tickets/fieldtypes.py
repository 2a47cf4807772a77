"""Constrained value types shared by the ticket models.

Every constraint here has a twin in ``schemas/release-ticket.v1.json``; the contract
tests feed one corpus to both, so change them together. The models are strict (a YAML
``"5"`` is not the number 5) but accept whole floats for integers because JSON Schema's
``integer`` does (``1.0`` is an integer there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal, TypeAlias, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, PlainValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "DATE_PATTERN",
    "MESSAGE_KEY_PATTERN",
    "Count",
    "Date",
    "MessageKey",
    "Multiplier",
    "Name",
    "NonNegCount",
    "NotNull",
    "Percent",
    "PositivePercent",
    "RateAbove",
    "RateBelow",
    "RateMargin",
    "SegmentScope",
    "SegmentsOnly",
    "StrictModel",
    "Text",
    "UniqueTuple",
    "as_tuple",
    "unique",
]

DATE_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
MESSAGE_KEY_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
MAX_NAME: Final = 256
MAX_TEXT: Final = 4000

T = TypeVar("T")


class StrictModel(BaseModel):
    """Base of every ticket model: strict, closed and immutable once loaded."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("not_null", "must not be null; leave the field out instead")
    return value


NotNull: Final = BeforeValidator(_not_null)
"""Put on optional fields: absent means "not given", and null is not a second spelling of it."""


def _whole(value: Any) -> Any:
    return int(value) if type(value) is float and value.is_integer() else value


def as_tuple(value: Any) -> Any:
    """Lists from YAML/JSON become tuples so a loaded ticket cannot be mutated in place."""
    return tuple(value) if type(value) is list else value


def unique(items: tuple[T, ...]) -> tuple[T, ...]:
    seen: set[Any] = set()
    for item in items:
        if item in seen:
            raise PydanticCustomError("not_unique", "lists {item!r} more than once", {"item": item})
        seen.add(item)
    return items


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
Date = Annotated[str, Field(pattern=DATE_PATTERN)]
MessageKey = Annotated[str, Field(pattern=MESSAGE_KEY_PATTERN)]

Count = Annotated[int, BeforeValidator(_whole), Field(ge=1)]
NonNegCount = Annotated[int, BeforeValidator(_whole), Field(ge=0)]

RateAbove = Annotated[float, Field(ge=0, lt=1)]
"""A rate the candidate must exceed; 1 could never be exceeded."""
RateBelow = Annotated[float, Field(gt=0, le=1)]
"""A rate something must stay under; 0 could never be undercut."""
RateMargin = Annotated[float, Field(gt=0, le=1)]
"""A difference of two rates, as a fraction (0.05 = 5 percentage points)."""
Multiplier = Annotated[float, Field(gt=1)]
"""An "x times" factor; 1 or less would fire on a candidate no worse than the reference."""

Percent = Annotated[float, Field(ge=0, le=100)]
PositivePercent = Annotated[float, Field(gt=0, le=100)]


def _names(value: Any) -> tuple[str, ...] | None:
    if type(value) is not list and type(value) is not tuple:
        return None
    if not value or any(type(v) is not str or not 0 < len(v) <= MAX_NAME for v in value):
        return None
    if len(set(value)) != len(value):
        return None
    return tuple(value)


def _scope(allow_all: bool) -> PlainValidator:
    words = "all, affected" if allow_all else "affected"
    keywords = ("all", "affected") if allow_all else ("affected",)

    def check(value: Any) -> Any:
        if type(value) is str and value in keywords:
            return value
        names = _names(value)
        if names is None:
            raise PydanticCustomError(
                "segment_scope",
                "must be {words} or a non-empty list of distinct segment names",
                {"words": words},
            )
        return names

    return PlainValidator(check)


def _dump_scope(value: str | Sequence[str]) -> str | list[str]:
    return value if isinstance(value, str) else list(value)


_SCOPE_OUT: Final = PlainSerializer(_dump_scope)

SegmentScope: TypeAlias = Annotated[Literal["all", "affected"] | tuple[str, ...], _scope(True), _SCOPE_OUT]
"""Which traffic an action applies to: everything, the segments the gate saw breached, or named ones."""
SegmentsOnly: TypeAlias = Annotated[Literal["affected"] | tuple[str, ...], _scope(False), _SCOPE_OUT]

UniqueTuple = AfterValidator(unique)
