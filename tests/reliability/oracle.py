"""An independent verdict on a telemetry message: what a worker must count and what it must refuse.

Nothing here calls rollwatch's decoder or validator. Bytes are read by the standard
library (strict UTF-8, ``json`` with NaN, Infinity and overflowing numbers refused and a
recursion limit high enough for any nesting the fuzz builds), each event is judged by the
JSON Schema in ``schemas/`` through ``jsonschema``, and the receiver's documented rules
(README and ``rollwatch.admission``'s docstring: at most five minutes ahead of the clock, at
most eight days old, the event's workflow is the message key, at most ``MAX_BATCH`` items,
no empty batch) are restated here from their numbers, not imported as code.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.conftest import schema_validator

__all__ = ["FUTURE_MS", "MAX_AGE_MS", "MAX_ITEMS", "Verdict", "judge_message"]

FUTURE_MS = 5 * 60_000
MAX_AGE_MS = 8 * 86_400_000
MAX_ITEMS = 50_000

_SCHEMA = schema_validator("telemetry-event.v1.json")


@dataclass
class Verdict:
    good: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[int | None] = field(default_factory=list)
    """Batch indices refused, or ``None`` for the whole message (or a single event)."""


class _NotJson(Exception):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(text)
    return value


def _constant(text: str) -> Any:
    raise _NotJson(text)


def _parse(raw: bytes) -> Any:
    text = raw.decode("utf-8")  # strict: invalid UTF-8 is not JSON text
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 50_000))
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_constant)
    finally:
        sys.setrecursionlimit(limit)


def _ts_ms(value: Any) -> int:
    if isinstance(value, str):
        return int(datetime.fromisoformat(value.replace("z", "Z").replace("t", "T")).timestamp() * 1000)
    return round(float(value) * 1000)


def _admitted(event: Any, now_ms: int, key: str | None) -> bool:
    if not isinstance(event, dict) or not _SCHEMA.is_valid(event):
        return False
    ts = _ts_ms(event["ts"])
    if ts > now_ms + FUTURE_MS or ts < now_ms - MAX_AGE_MS:
        return False
    return key is None or event["workflow"] == key


def judge_message(raw: bytes | None, key: bytes | None, now_ms: int) -> Verdict:
    """What a receiver at ``now_ms`` must do with one Kafka message."""
    if raw is None:
        return Verdict(rejected=[None])
    try:
        value = _parse(raw)
    except (UnicodeDecodeError, ValueError, _NotJson, RecursionError):
        return Verdict(rejected=[None])
    wanted = key.decode("utf-8", "replace") if key else None
    if isinstance(value, dict):
        return Verdict(good=[value]) if _admitted(value, now_ms, wanted) else Verdict(rejected=[None])
    if not isinstance(value, list) or not value or len(value) > MAX_ITEMS:
        return Verdict(rejected=[None])
    verdict = Verdict()
    for i, item in enumerate(value):
        if _admitted(item, now_ms, wanted):
            verdict.good.append(item)
        else:
            verdict.rejected.append(i)
    return verdict
