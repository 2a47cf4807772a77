"""The receiver's rules for events that are valid on their own but not here and now.

The streaming core has no clock and no notion of Kafka keys, so the worker, which has
both, refuses at the door: events stamped in the future (a wrong clock, or milliseconds
sent as seconds x 1000: one would push a workflow's watermark ahead and make every honest
event after it late), events older than anything a gate can read (1970, or a year-old
file replayed into the live topic: they would count as fresh calls), and events whose
workflow is not the message's key (they would land on another workflow's partition,
where a second worker may be keeping that workflow's state). Each refusal is a
:class:`~rollwatch.events.Rejected` with a reason, so it goes to the dead letters; the
rest of the message is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from operator import attrgetter
from typing import Final

import orjson

from rollwatch.errors import InvalidEventError
from rollwatch.events import DecodedMessage, Event, Rejected, event_to_dict

__all__ = [
    "MAX_AGE_MS",
    "MAX_FUTURE_SKEW_MS",
    "admit",
    "reject_foreign",
    "reject_future",
    "reject_stale",
]

MAX_FUTURE_SKEW_MS: Final = 5 * 60_000
"""How far ahead of the receiver's clock an event may be stamped before it is refused."""

MAX_AGE_MS: Final = 8 * 86_400_000
"""The oldest event a worker takes: the 7-day latency baseline (the longest window any gate
reads) plus a day of margin for a consumer that is behind or a producer that retries late."""

_TS: Final = attrgetter("ts_ms")
_WORKFLOW: Final = attrgetter("workflow")

Check = Callable[[Event], "tuple[str, str] | None"]
"""``(field, problem)`` when an event must be refused, else ``None``."""


def _refuse(decoded: DecodedMessage, check: Check, batch: bool) -> DecodedMessage:
    """Move the events ``check`` refuses to the rejected list, naming their batch index."""
    verdicts = [check(event) for event in decoded.events]
    if not any(verdicts):
        return decoded
    if batch:
        # The kept events are the batch's items minus the rejected ones, in order.
        skipped = {r.index for r in decoded.rejected if r.index is not None}
        positions = (i for i in count() if i not in skipped)
        indices: list[int | None] = [next(positions) for _ in decoded.events]
    else:
        indices = [None] * len(decoded.events)
    kept: list[Event] = []
    rejected = list(decoded.rejected)
    for event, index, verdict in zip(decoded.events, indices, verdicts, strict=True):
        if verdict is None:
            kept.append(event)
            continue
        field, problem = verdict
        path = field if index is None else f"[{index}].{field}"
        rejected.append(Rejected(index, InvalidEventError(path, problem), orjson.dumps(event_to_dict(event))))
    return DecodedMessage(kept, rejected)


def reject_future(
    decoded: DecodedMessage, now_ms: int, skew_ms: int = MAX_FUTURE_SKEW_MS, *, batch: bool = False
) -> DecodedMessage:
    """Refuse events stamped beyond ``now_ms + skew_ms``; ``batch``: name each item's index."""
    limit = now_ms + skew_ms

    def check(event: Event) -> tuple[str, str] | None:
        if event.ts_ms <= limit:
            return None
        ahead = (event.ts_ms - now_ms) / 1000
        return "ts", f"is {ahead:.0f}s ahead of the receiver's clock (limit {skew_ms // 1000}s)"

    return _refuse(decoded, check, batch)


def reject_stale(
    decoded: DecodedMessage, now_ms: int, max_age_ms: int = MAX_AGE_MS, *, batch: bool = False
) -> DecodedMessage:
    """Refuse events stamped before ``now_ms - max_age_ms``: no gate window reaches them."""
    limit = now_ms - max_age_ms

    def check(event: Event) -> tuple[str, str] | None:
        if event.ts_ms >= limit:
            return None
        days = (now_ms - event.ts_ms) / 86_400_000
        return "ts", (
            f"is {days:,.1f} days old, older than any window a ticket can read "
            f"(limit {max_age_ms // 86_400_000} days: the 7-day baseline and a margin)"
        )

    return _refuse(decoded, check, batch)


def reject_foreign(decoded: DecodedMessage, key: str, *, batch: bool = False) -> DecodedMessage:
    """Refuse events whose workflow is not ``key``, the message's Kafka key."""

    def check(event: Event) -> tuple[str, str] | None:
        if event.workflow == key:
            return None
        return "workflow", (
            f"is {event.workflow!r} but the message is keyed {key!r}: telemetry must be keyed by its "
            "workflow, or its events count on another workflow's partition"
        )

    return _refuse(decoded, check, batch)


def admit(decoded: DecodedMessage, now_ms: int, key: str | None, *, batch: bool) -> DecodedMessage:
    """All three rules, cheapest test first; a clean message (the normal case) is returned as is."""
    events = decoded.events
    if not events:
        return decoded
    # C-level passes (map over attrgetter): the hot path pays three of them per message.
    if max(map(_TS, events)) > now_ms + MAX_FUTURE_SKEW_MS:
        decoded = reject_future(decoded, now_ms, batch=batch)
    if min(map(_TS, events)) < now_ms - MAX_AGE_MS:
        decoded = reject_stale(decoded, now_ms, batch=batch)
    if key is not None and not all(map(key.__eq__, map(_WORKFLOW, decoded.events))):
        decoded = reject_foreign(decoded, key, batch=batch)
    return decoded
