"""Telemetry events v1: typed records and the validator behind ``schemas/telemetry-event.v1.json``.

This module is the contract's validator: hand-written straight-line code over the
dict orjson returns (``jsonschema`` runs at ~50 µs per event; this at ~3 µs), naming
the field and the problem of every rejection. ``tests/test_contract_events.py`` feeds
one corpus of valid and invalid samples to it and to the JSON Schema and requires the
same verdicts. :func:`decode_message` first offers each message to msgspec's fast path
(``rollwatch.wire``, ~1.4 µs per event), which accepts only what this validator would
accept and declines everything else back to it.

Time is kept as integer epoch milliseconds (``ts_ms``) inside; on the wire ``ts``
is epoch seconds (number) or an RFC 3339 string with an offset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from rollwatch.batchsplit import split_array
from rollwatch.errors import InvalidEventError
from rollwatch.records import (
    ARMS,
    MAX_BATCH,
    MAX_ID,
    MAX_SAMPLE,
    MAX_TS_SECONDS,
    Arm,
    CallEvent,
    CallStatus,
    ComplaintEvent,
    Event,
    ReviewEvent,
    Verdict,
)
from rollwatch.wire import fast_decode

__all__ = [
    "ARMS",
    "MAX_BATCH",
    "Arm",
    "CallEvent",
    "CallStatus",
    "ComplaintEvent",
    "DecodedMessage",
    "Event",
    "Rejected",
    "ReviewEvent",
    "Verdict",
    "decode_checked",
    "decode_message",
    "encode_events",
    "event_to_dict",
    "parse_event",
]


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_STATUSES: Final = frozenset({"ok", "error", "timeout"})
_VERDICTS: Final = frozenset({"approved", "rejected"})

_COMMON: Final = ("type", "event_id", "ts", "workflow", "route", "arm", "segment", "trace_id")
_CALL_KEYS: Final = frozenset(
    (
        *_COMMON,
        "latency_ms",
        "status",
        "schema_valid",
        "safety_blocked",
        "task_success",
        "cost_usd",
        "provider",
        "model",
        "prompt_version",
        "input_tokens",
        "output_tokens",
        "tool_calls",
        "quality_score",
    )
)
_CALL_REQUIRED: Final = 11  # type, event_id, ts, workflow, route and six call fields
_MISSING: Final = object()
_REVIEW_KEYS: Final = frozenset((*_COMMON, "verdict", "call_event_id", "reviewer"))
_COMPLAINT_KEYS: Final = frozenset((*_COMMON, "confirmed", "call_event_id", "sample"))


def _fail(field: str, problem: str) -> InvalidEventError:
    return InvalidEventError(field, problem)


def _req(d: dict[str, Any], key: str) -> Any:
    try:
        return d[key]
    except KeyError:
        raise _fail(key, "is required") from None


def _string(value: Any, key: str, limit: int = MAX_ID) -> str:
    if type(value) is not str:
        raise _fail(key, f"must be a string, got {_kind(value)}")
    if not value:
        raise _fail(key, "must not be empty")
    if len(value) > limit:
        raise _fail(key, f"must be at most {limit} characters, got {len(value)}")
    return value


def _opt_string(d: dict[str, Any], key: str, limit: int = MAX_ID) -> str | None:
    value = d.get(key)
    return None if value is None else _string(value, key, limit)


def _number(value: Any, key: str) -> float:
    kind = type(value)
    if kind is not float and kind is not int:
        raise _fail(key, f"must be a number, got {_kind(value)}")
    if value < 0:
        raise _fail(key, f"must be >= 0, got {value}")
    if kind is float and not math.isfinite(value):
        raise _fail(key, "must be finite")
    return float(value)


def _opt_number(d: dict[str, Any], key: str) -> float | None:
    value = d.get(key)
    return None if value is None else _number(value, key)


def _opt_count(d: dict[str, Any], key: str) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    kind = type(value)
    if kind is float and value.is_integer():
        value = int(value)
    elif kind is not int:
        raise _fail(key, f"must be an integer, got {_kind(value)}")
    if value < 0:
        raise _fail(key, f"must be >= 0, got {value}")
    return int(value)


def _bool(value: Any, key: str) -> bool:
    if type(value) is not bool:
        raise _fail(key, f"must be true or false, got {_kind(value)}")
    return value


def _nullable_bool(d: dict[str, Any], key: str) -> bool | None:
    value = _req(d, key)
    if value is None or type(value) is bool:
        return value
    raise _fail(key, f"must be true, false or null, got {_kind(value)}")


def _ts_ms(value: Any) -> int:
    kind = type(value)
    if kind is int or kind is float:
        if kind is float and not math.isfinite(value):
            raise _fail("ts", "must be finite")
        if value < 0:
            raise _fail("ts", f"must be >= 0 epoch seconds, got {value}")
        if value > MAX_TS_SECONDS:
            raise _fail("ts", f"must be epoch seconds; {value} looks like milliseconds")
        return int(value * 1000 + 0.5)
    if kind is str:
        if not _RFC3339.match(value):
            raise _fail("ts", f"must be RFC 3339 with an offset (2026-11-23T10:00:00Z), got {value[:64]!r}")
        try:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError as exc:
            raise _fail("ts", f"is not a valid date-time: {exc}") from None
        return round(parsed.timestamp() * 1000)
    raise _fail("ts", f"must be epoch seconds or an RFC 3339 string, got {_kind(value)}")


def _arm(d: dict[str, Any]) -> Arm | None:
    value: Arm | None = d.get("arm")
    if value is None or (type(value) is str and value in ARMS):
        return value
    raise _fail("arm", f"must be one of control, candidate, shadow, got {_short(value)}")


def _check_keys(d: dict[str, Any], allowed: frozenset[str], kind: str) -> None:
    if not allowed.issuperset(d):
        unknown = sorted(d.keys() - allowed)
        raise _fail(unknown[0], f"is not a field of a {kind} event")


def _parse_call(d: dict[str, Any]) -> CallEvent:
    # Straight-line fast path: each check is inlined for the common, valid case and
    # falls back to the helper (which raises with a precise message) only on failure.
    if not _CALL_KEYS.issuperset(d):
        _check_keys(d, _CALL_KEYS, "call")
    get: Callable[..., Any] = d.get
    event_id = get("event_id")
    if type(event_id) is not str or not 0 < len(event_id) <= MAX_ID:
        _string(_req(d, "event_id"), "event_id")
    workflow = get("workflow")
    if type(workflow) is not str or not 0 < len(workflow) <= MAX_ID:
        _string(_req(d, "workflow"), "workflow")
    route = get("route")
    if type(route) is not str or not 0 < len(route) <= MAX_ID:
        _string(_req(d, "route"), "route")
    ts = get("ts")
    if type(ts) is float and 0 <= ts <= MAX_TS_SECONDS:
        ts_ms = int(ts * 1000 + 0.5)
    else:
        ts_ms = _ts_ms(_req(d, "ts"))
    latency = get("latency_ms")
    if type(latency) is not float or not 0 <= latency < math.inf:
        latency = _number(_req(d, "latency_ms"), "latency_ms")
    cost = get("cost_usd")
    if type(cost) is not float or not 0 <= cost < math.inf:
        cost = _number(_req(d, "cost_usd"), "cost_usd")
    status: CallStatus = get("status")
    if type(status) is not str or status not in _STATUSES:
        raise _fail("status", f"must be one of ok, error, timeout, got {_short(_req(d, 'status'))}")
    schema_valid = get("schema_valid", _MISSING)
    if schema_valid is not True and schema_valid is not False and schema_valid is not None:
        schema_valid = _nullable_bool(d, "schema_valid")
    task_success = get("task_success", _MISSING)
    if task_success is not True and task_success is not False and task_success is not None:
        task_success = _nullable_bool(d, "task_success")
    safety_blocked = get("safety_blocked")
    if safety_blocked is not True and safety_blocked is not False:
        _bool(_req(d, "safety_blocked"), "safety_blocked")
    arm = get("arm")
    if arm is not None and (type(arm) is not str or arm not in ARMS):
        _arm(d)
    if len(d) == _CALL_REQUIRED:
        return CallEvent(
            event_id,
            ts_ms,
            workflow,
            route,
            latency,
            status,
            schema_valid,
            safety_blocked,
            task_success,
            cost,
        )
    # Optional fields: absent is the common case, so test for None before anything else.
    segment = get("segment")
    if segment is not None and (type(segment) is not str or not 0 < len(segment) <= MAX_ID):
        _string(segment, "segment")
    trace_id = get("trace_id")
    if trace_id is not None and (type(trace_id) is not str or not 0 < len(trace_id) <= MAX_ID):
        _string(trace_id, "trace_id")
    provider = get("provider")
    if provider is not None and (type(provider) is not str or not 0 < len(provider) <= MAX_ID):
        _string(provider, "provider")
    model = get("model")
    if model is not None and (type(model) is not str or not 0 < len(model) <= MAX_ID):
        _string(model, "model")
    prompt_version = get("prompt_version")
    if prompt_version is not None and (type(prompt_version) is not str or not 0 < len(prompt_version) <= MAX_ID):
        _string(prompt_version, "prompt_version")
    input_tokens = get("input_tokens")
    if input_tokens is not None and (type(input_tokens) is not int or input_tokens < 0):
        input_tokens = _opt_count(d, "input_tokens")
    output_tokens = get("output_tokens")
    if output_tokens is not None and (type(output_tokens) is not int or output_tokens < 0):
        output_tokens = _opt_count(d, "output_tokens")
    tool_calls = get("tool_calls")
    if tool_calls is not None and (type(tool_calls) is not int or tool_calls < 0):
        tool_calls = _opt_count(d, "tool_calls")
    quality = get("quality_score")
    if quality is not None and (type(quality) is not float or not 0 <= quality < math.inf):
        quality = _opt_number(d, "quality_score")
    return CallEvent(
        event_id,
        ts_ms,
        workflow,
        route,
        latency,
        status,
        schema_valid,
        safety_blocked,
        task_success,
        cost,
        arm,
        segment,
        trace_id,
        provider,
        model,
        prompt_version,
        input_tokens,
        output_tokens,
        tool_calls,
        quality,
    )


def _parse_review(d: dict[str, Any]) -> ReviewEvent:
    _check_keys(d, _REVIEW_KEYS, "review")
    verdict: Verdict = _req(d, "verdict")
    if type(verdict) is not str or verdict not in _VERDICTS:
        raise _fail("verdict", f"must be approved or rejected, got {_short(verdict)}")
    return ReviewEvent(
        event_id=_string(_req(d, "event_id"), "event_id"),
        ts_ms=_ts_ms(_req(d, "ts")),
        workflow=_string(_req(d, "workflow"), "workflow"),
        route=_string(_req(d, "route"), "route"),
        verdict=verdict,
        arm=_arm(d),
        segment=_opt_string(d, "segment"),
        trace_id=_opt_string(d, "trace_id"),
        call_event_id=_opt_string(d, "call_event_id"),
        reviewer=_opt_string(d, "reviewer"),
    )


def _parse_complaint(d: dict[str, Any]) -> ComplaintEvent:
    _check_keys(d, _COMPLAINT_KEYS, "complaint")
    return ComplaintEvent(
        event_id=_string(_req(d, "event_id"), "event_id"),
        ts_ms=_ts_ms(_req(d, "ts")),
        workflow=_string(_req(d, "workflow"), "workflow"),
        route=_string(_req(d, "route"), "route"),
        confirmed=_bool(_req(d, "confirmed"), "confirmed"),
        arm=_arm(d),
        segment=_opt_string(d, "segment"),
        trace_id=_opt_string(d, "trace_id"),
        call_event_id=_opt_string(d, "call_event_id"),
        sample=_opt_string(d, "sample", MAX_SAMPLE),
    )


_PARSERS: Final[dict[str, Callable[[dict[str, Any]], Event]]] = {
    "call": _parse_call,
    "review": _parse_review,
    "complaint": _parse_complaint,
}


def parse_event(d: Any) -> Event:
    """Validate one decoded JSON value against telemetry event v1 and build its record.

    Raises :class:`InvalidEventError` naming the field and the problem.
    """
    if type(d) is not dict:
        raise _fail("", f"an event must be a JSON object, got {_kind(d)}")
    kind = d.get("type")
    parser = _PARSERS.get(kind) if type(kind) is str else None
    if parser is None:
        if kind is None:
            raise _fail("type", "is required")
        raise _fail("type", f"must be one of call, review, complaint, got {_short(kind)}")
    return parser(d)


@dataclass(frozen=True, slots=True)
class Rejected:
    """One event (or a whole message) that failed validation, with why.

    ``index`` is the position in a batch, or ``None`` when the message itself was unusable.
    ``raw`` is the offending item re-encoded (or the original bytes for a whole message).
    """

    index: int | None
    error: InvalidEventError
    raw: bytes


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    """What one Kafka message held: the good events and the rejected ones, none lost."""

    events: list[Event]
    rejected: list[Rejected]


def decode_message(raw: bytes) -> DecodedMessage:
    """Decode one message carrying an event or a JSON array of events.

    A bad item in a batch rejects only that item: the rest of the batch is kept. Clean
    messages take msgspec's fast path (``rollwatch.wire``); whatever it declines is
    decided here by the hand-written validator, which names every problem.
    """
    events = fast_decode(raw)
    if events is not None:
        return DecodedMessage(events, [])
    return decode_checked(raw)


def decode_checked(raw: bytes) -> DecodedMessage:
    """:func:`decode_message` without the fast path: the contract's own validator alone."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        items = split_array(raw) if str(exc).startswith("depth limit") else None
        if items and len(items) <= MAX_BATCH:
            return _decode_items(items)
        return DecodedMessage([], [Rejected(None, InvalidEventError("", f"not valid JSON: {exc}"), raw)])
    if type(value) is dict:
        try:
            return DecodedMessage([parse_event(value)], [])
        except InvalidEventError as exc:
            return DecodedMessage([], [Rejected(None, exc, raw)])
    if type(value) is not list:
        problem = f"a message must hold an event object or an array of events, got {_kind(value)}"
        err = InvalidEventError("", problem)
        return DecodedMessage([], [Rejected(None, err, raw)])
    if not value:
        return DecodedMessage([], [Rejected(None, InvalidEventError("", "empty batch"), raw)])
    if len(value) > MAX_BATCH:
        err = InvalidEventError("", f"batch of {len(value)} events exceeds the limit of {MAX_BATCH}")
        return DecodedMessage([], [Rejected(None, err, raw)])
    try:
        # Fast path: a clean batch (the normal case) in one comprehension; call events,
        # the bulk of traffic, skip the generic dispatch.
        call = _parse_call
        return DecodedMessage(
            [call(item) if type(item) is dict and item.get("type") == "call" else parse_event(item) for item in value],
            [],
        )
    except InvalidEventError:
        pass
    # Slow path, only for a batch with bad items: keep the good ones, reject the rest one by one.
    events: list[Event] = []
    rejected: list[Rejected] = []
    for i, item in enumerate(value):
        try:
            events.append(parse_event(item))
        except InvalidEventError as exc:
            path = f"[{i}].{exc.field}" if exc.field else f"[{i}]"
            rejected.append(Rejected(i, InvalidEventError(path, exc.problem), _reencoded(item)))
    return DecodedMessage(events, rejected)


def _decode_items(items: list[bytes]) -> DecodedMessage:
    """A batch parsed item by item: one too deep for the parser costs only itself."""
    events: list[Event] = []
    rejected: list[Rejected] = []
    for i, item in enumerate(items):
        try:
            events.append(parse_event(orjson.loads(item)))
        except orjson.JSONDecodeError as exc:
            rejected.append(Rejected(i, InvalidEventError(f"[{i}]", f"not valid JSON: {exc}"), item))
        except InvalidEventError as exc:
            path = f"[{i}].{exc.field}" if exc.field else f"[{i}]"
            rejected.append(Rejected(i, InvalidEventError(path, exc.problem), item))
    return DecodedMessage(events, rejected)


def _reencoded(item: Any) -> bytes:
    """A rejected batch item as JSON, for its dead letter.

    orjson reads 1024 levels of nesting but writes at most 254, so an item nested deeper
    cannot be written back; it must cost only itself, not the whole message (whose
    original bytes the dead letter also names by offset).
    """
    try:
        return orjson.dumps(item)
    except TypeError:
        return orjson.dumps(f"{_kind(item)} nested too deeply to re-encode")


def event_to_dict(event: Event) -> dict[str, Any]:
    """The wire form of a record (``ts`` as epoch seconds), omitting unset optional fields."""
    out: dict[str, Any] = {"type": event.type}
    for name in event.__slots__:
        value = getattr(event, name)
        if name == "ts_ms":
            out["ts"] = value / 1000
        elif value is not None or name in ("schema_valid", "task_success"):
            out[name] = value
    return out


def encode_events(events: Iterable[Event]) -> bytes:
    """One message body: a single object for one event, an array for several."""
    items = [event_to_dict(e) for e in events]
    return orjson.dumps(items[0] if len(items) == 1 else items)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({_short(value)})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
