"""Bounded memory of recently seen event ids, to drop Kafka redeliveries.

Ids are kept as 60-bit xxHash3 keys, not strings: the same values in every process
(Python's own ``hash`` is salted per process, so it could not be serialized), bounded
whatever the ids look like, and cheap: ``xxh3_64`` costs ~0.08 µs an id where the
BLAKE2b digest used before cost ~0.5-0.7 µs, the largest single item of the per-event
apply path. A cryptographic hash buys nothing here: ids come from our own producers,
and a forged collision could only drop one event of the forger's own workflow.

Why 60 bits: a CPython int below 2**60 fits two 30-bit digits (a 32-byte object,
against 48 for a full 64-bit value), which is a sixth of a remembered id's memory.
With 4096 ids remembered, the chance that a new id is wrongly taken for a duplicate
is at most 4096 / 2**60 ≈ 3.6e-15 per event: one false drop in ~10 years at a
million events a second.

Layout: a deque gives the arrival order to forget in, a dict (keys only) gives O(1)
membership. A dict rather than a set because, under the constant add-one/forget-one
churn of a full ring, a set's table settles at 8 slots per live key (128 bytes an id)
while a dict's index + entry arrays settle near 40; measured by ``bench_streams.py``,
an id costs ~80 bytes all told instead of ~170 (BLAKE2b digests in a set).

Format: version 2 frames (:data:`DEDUP_VERSION`) hold xxHash3 keys. Version 1 frames
(and workflow frames) held BLAKE2b digests, which cannot be turned into xxHash3 keys;
they are read as *legacy* entries: kept as ``bytes`` (so never equal to an int key),
checked with BLAKE2b while any remain, and forgotten in arrival order like the rest.
After ``size`` new ids none remain and the ring costs what a fresh one does.
"""

from __future__ import annotations

from array import array
from collections import deque
from hashlib import blake2b
from typing import Final, cast

from xxhash import xxh3_64_intdigest

from rollwatch.streams.codec import KIND_DEDUP, Reader, Writer, frame, unframe

__all__ = ["DEDUP_VERSION", "KEY_MASK", "DedupRing", "id_hash"]

_MAX_SIZE: Final = 10_000_000
KEY_MASK: Final = (1 << 60) - 1
DEDUP_VERSION: Final = 2
"""Frame version of dedup rings and of the workflow frames that embed one (1 was BLAKE2b)."""
_LEGACY_VERSION: Final = 1
_LITTLE: Final = array("Q", [1]).tobytes()[0] == 1


def id_hash(event_id: str) -> int:
    """The stable 60-bit key an id is remembered by."""
    return xxh3_64_intdigest(event_id.encode()) & KEY_MASK


def _legacy_hash(event_id: str) -> bytes:
    return blake2b(event_id.encode(), digest_size=8).digest()


class DedupRing:
    """The keys of the last ``size`` distinct ids seen.

    ``WorkflowState.apply_many`` inlines :meth:`check_and_add` on its hot path (it reads
    ``_seen``, ``_order`` and ``legacy``); keep the two in step.
    """

    __slots__ = ("_order", "_seen", "legacy", "size")

    def __init__(self, size: int = 4096) -> None:
        if type(size) is not int or not 1 <= size <= _MAX_SIZE:
            raise ValueError(f"dedup size must be an int in [1, {_MAX_SIZE}], got {size!r}")
        self.size = size
        self._order: deque[int | bytes] = deque()
        self._seen: dict[int | bytes, None] = {}
        self.legacy = 0
        """How many BLAKE2b digests read from a version 1 frame are still remembered."""

    def check_and_add(self, event_id: str) -> bool:
        """True if ``event_id`` was seen among the last ``size`` ids; otherwise remember it."""
        key = xxh3_64_intdigest(event_id.encode()) & KEY_MASK
        seen = self._seen
        if key in seen or (self.legacy and _legacy_hash(event_id) in seen):
            return True
        order = self._order
        if len(order) == self.size:
            old = order.popleft()
            del seen[old]
            if type(old) is bytes:
                self.legacy -= 1
        order.append(key)
        seen[key] = None
        return False

    def __contains__(self, event_id: object) -> bool:
        if not isinstance(event_id, str):
            return False
        return id_hash(event_id) in self._seen or (self.legacy > 0 and _legacy_hash(event_id) in self._seen)

    def __len__(self) -> int:
        return len(self._order)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DedupRing):
            return NotImplemented
        return self.size == other.size and self._order == other._order

    __hash__ = None  # type: ignore[assignment]

    def write(self, w: Writer) -> None:
        """Version 2 layout: size, the legacy digests (always the oldest), then the keys."""
        order = self._order
        legacy = self.legacy
        w.uint(self.size)
        w.uint(legacy)
        if legacy:
            items = list(order)
            w.raw(b"".join(cast(list[bytes], items[:legacy])))
            keys = array("Q", cast(list[int], items[legacy:]))
        else:
            keys = array("Q", cast(deque[int], order))
        if not _LITTLE:  # pragma: no cover - big-endian hosts only
            keys.byteswap()
        w.uint(len(keys))
        w.raw(keys.tobytes())

    @classmethod
    def read(cls, r: Reader, version: int = DEDUP_VERSION) -> DedupRing:
        """Read either layout; a version 1 ring comes back as legacy BLAKE2b digests."""
        ring = cls(r.bounded(1, _MAX_SIZE, "dedup size"))
        if version == _LEGACY_VERSION:
            n = r.bounded(0, ring.size, "dedup fill")
            raw = r.raw(8 * n)
            ring._order.extend(raw[i : i + 8] for i in range(0, 8 * n, 8))
            ring.legacy = n
        else:
            legacy = r.bounded(0, ring.size, "legacy dedup fill")
            raw = r.raw(8 * legacy)
            ring._order.extend(raw[i : i + 8] for i in range(0, 8 * legacy, 8))
            n = r.bounded(0, ring.size - legacy, "dedup fill")
            keys = array("Q")
            keys.frombytes(r.raw(8 * n))
            if not _LITTLE:  # pragma: no cover
                keys.byteswap()
            if n and max(keys) > KEY_MASK:
                raise r.fail("dedup key wider than 60 bits")
            ring._order.extend(keys)
            ring.legacy = legacy
        ring._seen = dict.fromkeys(ring._order)
        if len(ring._seen) != len(ring._order):
            raise r.fail("dedup ring holds repeated keys")
        return ring

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return frame(KIND_DEDUP, w.buf)

    @classmethod
    def from_bytes(cls, data: bytes) -> DedupRing:
        r = unframe(data, KIND_DEDUP)
        ring = cls.read(r, r.version)
        r.end()
        return ring
