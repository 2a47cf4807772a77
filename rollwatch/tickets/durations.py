"""Durations as tickets write them (``30m``, ``7d``, ``60s``) and as the worker uses them (ms).

Integer milliseconds inside keep window arithmetic exact and match the ``ts_ms`` of
telemetry events. One unit per value (no ``1h30m``) keeps the grammar identical in the
JSON Schema pattern and here, so both accept exactly the same strings.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import PlainSerializer, PlainValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "DURATION_PATTERN",
    "POSITIVE_DURATION_PATTERN",
    "Duration",
    "PositiveDuration",
    "format_duration",
    "humanize_duration",
    "parse_duration",
]

DURATION_PATTERN: Final = r"^(0|[1-9][0-9]*)(ms|s|m|h|d)$"
POSITIVE_DURATION_PATTERN: Final = r"^[1-9][0-9]*(ms|s|m|h|d)$"

_UNIT_MS: Final = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
_DURATION: Final = re.compile(DURATION_PATTERN)


def parse_duration(text: str) -> int:
    """Milliseconds in ``text``; raises ``ValueError`` for anything but ``<int><unit>``."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 60s, 15m, 1h or 7d")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def format_duration(ms: int) -> str:
    """The shortest exact spelling, so a round trip through JSON is lossless."""
    for unit, size in _UNIT_MS.items():
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def humanize_duration(ms: int) -> str:
    """Words for explanations: ``30 min``, ``7 days``, ``1 h``."""
    names = {"d": ("day", "days"), "h": ("h", "h"), "m": ("min", "min"), "s": ("s", "s"), "ms": ("ms", "ms")}
    for unit, size in _UNIT_MS.items():
        if ms and ms % size == 0:
            n = ms // size
            return f"{n:,} {names[unit][0] if n == 1 else names[unit][1]}"
    return "0 s"


def _validator(positive: bool) -> PlainValidator:
    def check(value: Any) -> int:
        if type(value) is not str:
            raise PydanticCustomError(
                "duration_type", "must be a duration string like 30m or 7d, got {got}", {"got": _kind(value)}
            )
        match = _DURATION.match(value)
        if match is None:
            raise PydanticCustomError(
                "duration_format",
                "must be a whole number and one unit (ms, s, m, h, d) like 30m or 7d, got {got}",
                {"got": repr(value)},
            )
        ms = int(match.group(1)) * _UNIT_MS[match.group(2)]
        if positive and ms == 0:
            raise PydanticCustomError("duration_zero", "must be longer than zero")
        return ms

    return PlainValidator(check)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value}); write it with a unit, e.g. {value}m"
    return type(value).__name__


_SERIALIZER: Final = PlainSerializer(format_duration, return_type=str)

Duration = Annotated[int, _validator(positive=False), _SERIALIZER]
"""Milliseconds, written ``0s`` or more."""
PositiveDuration = Annotated[int, _validator(positive=True), _SERIALIZER]
"""Milliseconds, written ``1ms`` or more."""
