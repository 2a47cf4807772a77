"""Bounded memory of recently seen event ids, to drop Kafka redeliveries.

Ids are kept as 64-bit BLAKE2b hashes, not strings: 8 bytes each in a ring
(``array('Q')``) plus a set for O(1) membership, and the same values after a restart
(Python's own ``hash`` is salted per process, so it could not be serialized). With
4096 ids remembered, the chance that a new id is wrongly taken for a duplicate is
4096 / 2**64 per event.
"""

from __future__ import annotations

from array import array
from hashlib import blake2b
from typing import Final

from rollwatch.streams.codec import KIND_DEDUP, Reader, Writer, frame, unframe

__all__ = ["DedupRing", "id_hash"]

_MAX_SIZE: Final = 10_000_000


def id_hash(event_id: str) -> int:
    """The stable 64-bit hash an id is remembered by."""
    return int.from_bytes(blake2b(event_id.encode(), digest_size=8).digest(), "little")


class DedupRing:
    """The hashes of the last ``size`` distinct ids seen."""

    __slots__ = ("_n", "_pos", "_ring", "_seen", "size")

    def __init__(self, size: int = 4096) -> None:
        if type(size) is not int or not 1 <= size <= _MAX_SIZE:
            raise ValueError(f"dedup size must be an int in [1, {_MAX_SIZE}], got {size!r}")
        self.size = size
        self._ring = array("Q", bytes(8 * size))
        self._seen: set[int] = set()
        self._pos = 0
        self._n = 0

    def check_and_add(self, event_id: str) -> bool:
        """True if ``event_id`` was seen among the last ``size`` ids; otherwise remember it."""
        key = id_hash(event_id)
        seen = self._seen
        if key in seen:
            return True
        pos = self._pos
        if self._n == self.size:
            seen.discard(self._ring[pos])
        else:
            self._n += 1
        self._ring[pos] = key
        seen.add(key)
        pos += 1
        self._pos = 0 if pos == self.size else pos
        return False

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and id_hash(event_id) in self._seen

    def __len__(self) -> int:
        return self._n

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DedupRing):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def write(self, w: Writer) -> None:
        w.uint(self.size)
        w.uint(self._n)
        w.uint(self._pos)
        w.packed(self._ring[: self._n].tolist())

    @classmethod
    def read(cls, r: Reader) -> DedupRing:
        size = r.bounded(1, _MAX_SIZE, "dedup size")
        ring = cls(size)
        n = r.bounded(0, size, "dedup fill")
        pos = r.bounded(0, size - 1, "dedup position")
        if n < size and pos != n:
            raise r.fail(f"dedup position {pos} does not match fill {n}")
        keys = r.packed()
        if len(keys) != n:
            raise r.fail(f"dedup ring holds {len(keys)} hashes, expected {n}")
        ring._ring[:n] = array("Q", keys)
        ring._seen = set(keys)
        if len(ring._seen) != n:
            raise r.fail("dedup ring holds repeated hashes")
        ring._n = n
        ring._pos = pos
        return ring

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return frame(KIND_DEDUP, w.buf)

    @classmethod
    def from_bytes(cls, data: bytes) -> DedupRing:
        r = unframe(data, KIND_DEDUP)
        ring = cls.read(r)
        r.end()
        return ring
