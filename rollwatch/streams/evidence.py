"""The most recent offending items of a route, kept so a rollback can show its reasons.

A gate that fires says "schema failures 4.5% over the last 200 calls"; the evidence
says which calls. Bounded per kind (a deque per kind), so a flood of one kind cannot
push out the others. Complaint samples are truncated: evidence points at the event,
it is not an archive of it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from rollwatch.streams.codec import KIND_EVIDENCE, Reader, Writer, frame, unframe

__all__ = ["EVIDENCE_KINDS", "ComplaintLog", "Evidence", "EvidenceKind", "EvidenceReservoir"]

EvidenceKind: TypeAlias = Literal["schema_failure", "error", "timeout", "safety_block", "rejected_review", "complaint"]
EVIDENCE_KINDS: Final[tuple[EvidenceKind, ...]] = (
    "schema_failure",
    "error",
    "timeout",
    "safety_block",
    "rejected_review",
    "complaint",
)
_MAX_PER_KIND: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Evidence:
    """One offending item: what it was, which event, when (event time)."""

    kind: EvidenceKind
    event_id: str
    ts_ms: int
    trace_id: str | None = None
    call_event_id: str | None = None
    """The call a review or complaint is about, when the producer said."""
    sample: str | None = None
    """The first characters of a complaint's sample."""


class EvidenceReservoir:
    """The last ``per_kind`` items of each kind, in arrival order."""

    __slots__ = ("_items", "per_kind", "sample_chars")

    def __init__(self, per_kind: int = 20, sample_chars: int = 80) -> None:
        if type(per_kind) is not int or not 1 <= per_kind <= _MAX_PER_KIND:
            raise ValueError(f"per_kind must be an int in [1, {_MAX_PER_KIND}], got {per_kind!r}")
        self.per_kind = per_kind
        self.sample_chars = sample_chars
        self._items: dict[EvidenceKind, deque[Evidence]] = {k: deque(maxlen=per_kind) for k in EVIDENCE_KINDS}

    def add(
        self,
        kind: EvidenceKind,
        event_id: str,
        ts_ms: int,
        trace_id: str | None = None,
        call_event_id: str | None = None,
        sample: str | None = None,
    ) -> None:
        if sample is not None:
            sample = sample[: self.sample_chars] or None
        self._items[kind].append(Evidence(kind, event_id, ts_ms, trace_id, call_event_id, sample))

    def items(self, kind: EvidenceKind | None = None) -> tuple[Evidence, ...]:
        """One kind in arrival order, or every kind ordered by event time."""
        if kind is not None:
            return tuple(self._items[kind])
        every = [item for items in self._items.values() for item in items]
        every.sort(key=lambda e: e.ts_ms)
        return tuple(every)

    def between(self, kind: EvidenceKind, start_ms: int, end_ms: int) -> tuple[Evidence, ...]:
        return tuple(e for e in self._items[kind] if start_ms <= e.ts_ms < end_ms)

    def __len__(self) -> int:
        return sum(len(items) for items in self._items.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EvidenceReservoir):
            return NotImplemented
        return (
            self.per_kind == other.per_kind
            and self.sample_chars == other.sample_chars
            and all(list(self._items[k]) == list(other._items[k]) for k in EVIDENCE_KINDS)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EvidenceReservoir(per_kind={self.per_kind}, items={len(self)})"

    def write(self, w: Writer) -> None:
        w.uint(self.per_kind)
        w.uint(self.sample_chars)
        for kind in EVIDENCE_KINDS:
            items = self._items[kind]
            w.uint(len(items))
            prev = 0
            for item in items:
                w.ident(item.event_id)
                w.sint(item.ts_ms - prev)
                prev = item.ts_ms
                w.ident(item.trace_id)
                w.ident(item.call_event_id)
                w.opt_text(item.sample)

    @classmethod
    def read(cls, r: Reader) -> EvidenceReservoir:
        per_kind = r.bounded(1, _MAX_PER_KIND, "evidence per kind")
        sample_chars = r.bounded(0, 4096, "evidence sample chars")
        reservoir = cls(per_kind, sample_chars)
        for kind in EVIDENCE_KINDS:
            items = reservoir._items[kind]
            prev = 0
            for _ in range(r.bounded(0, per_kind, f"{kind} evidence count")):
                event_id = r.ident()
                if event_id is None:
                    raise r.fail("evidence without an event id")
                ts_ms = prev + r.sint()
                prev = ts_ms
                trace_id = r.ident()
                call_event_id = r.ident()
                sample = r.opt_text()
                items.append(Evidence(kind, event_id, ts_ms, trace_id, call_event_id, sample))
        return reservoir

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return frame(KIND_EVIDENCE, w.buf)

    @classmethod
    def from_bytes(cls, data: bytes) -> EvidenceReservoir:
        r = unframe(data, KIND_EVIDENCE)
        reservoir = cls.read(r)
        r.end()
        return reservoir


class ComplaintLog:
    """Event times of the last ``size`` confirmed complaints, for exact counts over any range.

    Complaint gates count a handful of complaints over a release window that may start
    mid-bucket, so bucket counts (exact only to the bucket) are not enough. A count is
    exact while no complaint has been dropped; past that it is a lower bound, and one
    over a threshold that small has already fired anyway.
    """

    __slots__ = ("_times", "size", "total")

    def __init__(self, size: int = 64) -> None:
        if type(size) is not int or not 1 <= size <= _MAX_PER_KIND:
            raise ValueError(f"complaint log size must be an int in [1, {_MAX_PER_KIND}], got {size!r}")
        self.size = size
        self.total = 0
        self._times: deque[int] = deque(maxlen=size)

    def add(self, ts_ms: int) -> None:
        self._times.append(ts_ms)
        self.total += 1

    def count_between(self, start_ms: int, end_ms: int) -> tuple[int, bool]:
        """(complaints with start_ms <= ts < end_ms, whether that count is exact)."""
        count = sum(1 for ts in self._times if start_ms <= ts < end_ms)
        return count, self.total <= self.size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ComplaintLog):
            return NotImplemented
        return self.size == other.size and self.total == other.total and list(self._times) == list(other._times)

    __hash__ = None  # type: ignore[assignment]

    def write(self, w: Writer) -> None:
        w.uint(self.size)
        w.uint(self.total)
        w.uint(len(self._times))
        prev = 0
        for ts in self._times:
            w.sint(ts - prev)
            prev = ts

    @classmethod
    def read(cls, r: Reader) -> ComplaintLog:
        log = cls(r.bounded(1, _MAX_PER_KIND, "complaint log size"))
        log.total = r.uint()
        count = r.bounded(0, min(log.size, log.total), "complaint times")
        prev = 0
        for _ in range(count):
            prev += r.sint()
            log._times.append(prev)
        if count != min(log.size, log.total):
            raise r.fail("complaint log count disagrees with its total")
        return log
