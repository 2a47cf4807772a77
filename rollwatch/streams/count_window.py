"""Exact rate of a yes/no property over the last N observations.

Why a bit ring of our own: river's rolling stats keep a deque of Python objects (~40
bytes an item) and recompute nothing incrementally for booleans; a packed bit ring
holds N observations in N/8 bytes, updates in O(1) with a running count of ones, and
serializes as its raw bytes (a 1000-call window is 125 bytes on the wire and in
memory).
"""

from __future__ import annotations

from typing import Final

from rollwatch.streams.codec import KIND_COUNT_WINDOW, Reader, Writer, frame, unframe

__all__ = ["CountWindow"]

_MAX_SIZE: Final = 10_000_000


class CountWindow:
    """The last ``size`` flags in arrival order, with how many are set.

    ``n`` is how many observations the window holds (``size`` once full), ``count``
    how many of them are set, and ``rate`` their ratio (``None`` while empty).

    Fast path. Most observations equal the one they evict (no error replacing no
    error, a success replacing a success): then only the position moves. The hot-path
    owners (``RouteState.apply``, ``TaskCostWindow.update``) inline that case::

        pos = window._pos
        if flag != window._bits[pos >> 3] >> (pos & 7) & 1 or pos == window._last:
            window.update(flag)
        else:
            window._pos = pos + 1

    which saves a Python call per observation, four per call event (``_last`` leaves
    the wrap to :meth:`update`). Keep :meth:`update` and that test in step.
    """

    __slots__ = ("_bits", "_count", "_last", "_pos", "_wrapped", "size")

    def __init__(self, size: int) -> None:
        if type(size) is not int or not 1 <= size <= _MAX_SIZE:
            raise ValueError(f"count window size must be an int in [1, {_MAX_SIZE}], got {size!r}")
        self.size = size
        self._last = size - 1
        """The slot after which the ring wraps (the fast path leaves that step to update)."""
        self._bits = bytearray((size + 7) >> 3)
        self._pos = 0
        self._wrapped = False
        self._count = 0

    def update(self, flag: bool) -> None:
        """Push one observation, evicting the oldest once the window is full."""
        pos = self._pos
        bits = self._bits
        index = pos >> 3
        mask = 1 << (pos & 7)
        byte = bits[index]
        if flag:
            if not byte & mask:
                bits[index] = byte | mask
                self._count += 1
        elif byte & mask:
            bits[index] = byte ^ mask
            self._count -= 1
        pos += 1
        if pos == self.size:
            self._pos = 0
            self._wrapped = True
        else:
            self._pos = pos

    @property
    def n(self) -> int:
        return self.size if self._wrapped else self._pos

    @property
    def count(self) -> int:
        return self._count

    @property
    def rate(self) -> float | None:
        n = self.n
        return self._count / n if n else None

    @property
    def position(self) -> int:
        """The slot the next observation goes to (a ring sharing this layout follows it)."""
        return self._pos

    @property
    def full(self) -> bool:
        return self._wrapped

    def flags(self, newest: int | None = None) -> list[bool]:
        """The held observations, oldest first (for tests and evidence, not the hot path);
        only the newest ``newest`` of them when given (a reader of what came since)."""
        n = self.n if newest is None else min(max(newest, 0), self.n)
        start = (self._pos - n) % self.size
        bits = self._bits
        out = []
        for i in range(n):
            pos = (start + i) % self.size
            out.append(bool(bits[pos >> 3] & (1 << (pos & 7))))
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CountWindow):
            return NotImplemented
        return self.size == other.size and self.flags() == other.flags()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CountWindow(size={self.size}, n={self.n}, count={self._count})"

    def write(self, w: Writer) -> None:
        w.uint(self.size)
        w.uint(self.n)
        w.uint(self._pos)
        w.raw(self._bits)

    @classmethod
    def read(cls, r: Reader) -> CountWindow:
        size = r.bounded(1, _MAX_SIZE, "count window size")
        n = r.bounded(0, size, "count window fill")
        pos = r.bounded(0, size - 1, "count window position")
        if n < size and pos != n:
            raise r.fail(f"count window position {pos} does not match fill {n}")
        bits = bytearray(r.raw((size + 7) >> 3))
        window = cls(size)
        window._bits = bits
        window._wrapped = n == size
        window._pos = pos
        if int.from_bytes(bits, "little") >> n:
            raise r.fail(f"count window has flags set past its {n} observations")
        window._count = sum(b.bit_count() for b in bits)
        return window

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return frame(KIND_COUNT_WINDOW, w.buf)

    @classmethod
    def from_bytes(cls, data: bytes) -> CountWindow:
        r = unframe(data, KIND_COUNT_WINDOW)
        window = cls.read(r)
        r.end()
        return window
