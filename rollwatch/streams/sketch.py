"""Mergeable quantile sketch with a relative-error guarantee (DDSketch's scheme).

The index mapping is ddsketch's own ``LogarithmicMapping`` (keys and representative
values come from it, so the accuracy guarantee is the library's). What is ours is the
storage, for three measured reasons:

* speed: ``DDSketch.add`` costs ~0.7 µs in pure Python; a dict increment on the
  mapped key costs ~0.2 µs, which is what lets a route take 200k+ events/s;
* size: a route keeps ~90 bucket sketches. ``DDSketch`` has no compact encoding
  (its protobuf form spends 8-byte doubles per bin); ours writes each bin in 1-2 bytes
  (sparse key-delta/count varints, or dense zigzag count deltas, whichever is smaller)
  and a closed bucket keeps only that encoded form in memory ("frozen"), so a live
  route costs kilobytes, not the ~100 bytes per bin a dict costs;
* numpy agreement: :meth:`quantile` interpolates linearly between adjacent ranks like
  ``numpy.percentile``'s default, so every answer is within ``accuracy`` (relative) of
  numpy's, not merely of some order statistic.

Values at or below the mapping's smallest indexable value (0 ms latencies) count as 0.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import accumulate
from operator import sub
from typing import Final

from ddsketch.mapping import LogarithmicMapping

from rollwatch.streams.codec import KIND_SKETCH, Reader, Writer, frame, unframe
from rollwatch.streams.errors import InvalidQuery

__all__ = ["QuantileSketch", "SketchMapping", "mapping_for"]

_MODE_SPARSE: Final = 0
_MODE_DENSE: Final = 1
_MAX_KEY_SPAN: Final = 1 << 20
_MAX_PARTS: Final = 64


class SketchMapping:
    """ddsketch's logarithmic value→key mapping, shared by every sketch of one accuracy."""

    __slots__ = ("_mapping", "accuracy", "min_value", "multiplier")

    def __init__(self, accuracy: float) -> None:
        self._mapping = LogarithmicMapping(accuracy)
        self.accuracy = float(accuracy)
        self.multiplier: float = self._mapping._multiplier
        self.min_value: float = self._mapping.min_possible

    def key(self, value: float) -> int:
        """Same key as ``LogarithmicMapping.key`` (offset 0), without its call overhead."""
        return math.ceil(math.log2(value) * self.multiplier)

    def value(self, key: int) -> float:
        """The bin's representative value: within ``accuracy`` of anything the bin holds."""
        result: float = self._mapping.value(key)
        return result


@lru_cache(maxsize=16)
def mapping_for(accuracy: float) -> SketchMapping:
    return SketchMapping(accuracy)


class QuantileSketch:
    """Counts of values per logarithmic bin; add, merge, and read quantiles."""

    __slots__ = ("_bins", "_count", "_frozen", "_memo", "_zeros", "mapping")

    def __init__(self, mapping: SketchMapping | float = 0.01) -> None:
        self.mapping = mapping if isinstance(mapping, SketchMapping) else mapping_for(mapping)
        self._bins: dict[int, int] | None = {}
        self._frozen: list[bytes] | None = None
        """Encoded bins while frozen: one part, plus parts merged in since (summed on read)."""
        self._zeros = 0
        self._count = 0
        self._memo: dict[tuple[float, ...], list[float | None]] | None = None
        """Answers of a frozen sketch, which cannot change until it thaws."""

    def add(self, value: float) -> None:
        bins = self._bins
        if bins is None:
            bins = self._thaw()
        self._count += 1
        mapping = self.mapping
        if value > mapping.min_value:
            key = math.ceil(math.log2(value) * mapping.multiplier)
            bins[key] = bins.get(key, 0) + 1
        else:
            self._zeros += 1

    def update_many(self, values: Iterable[float]) -> None:
        for value in values:
            self.add(value)

    def merge(self, other: QuantileSketch) -> None:
        """Add every value ``other`` holds (both must share an accuracy)."""
        if other.mapping.accuracy != self.mapping.accuracy:
            raise InvalidQuery(
                f"cannot merge sketches of accuracy {other.mapping.accuracy} and {self.mapping.accuracy}"
            )
        if not other._count:
            return
        bins = self._bins
        if bins is None and other._frozen is not None:
            # Frozen into frozen (a minute folding into its coarse bucket): keep the encoded
            # part as is, so an open coarse bucket costs bytes, not a 500-entry dict.
            assert self._frozen is not None
            self._memo = None
            self._frozen.extend(other._frozen)
            self._zeros += other._zeros
            self._count += other._count
            if len(self._frozen) > _MAX_PARTS:
                self.compact()
            return
        if bins is None:
            bins = self._thaw()
        self._memo = None
        if not bins and other._bins is not None:
            self._bins = dict(other._bins)  # into an empty sketch: a copy in C
        else:
            get = bins.get
            for key, count in other.items():
                bins[key] = get(key, 0) + count
        self._zeros += other._zeros
        self._count += other._count

    def subtract(self, other: QuantileSketch) -> None:
        """Remove every value ``other`` holds, which must all have been merged in before.

        Bins are integer counts, so this undoes :meth:`merge` exactly: a sliding window
        of buckets is kept as one running sketch (add the newest bucket, subtract the
        one that left) instead of being re-merged from every bucket at each query.
        """
        if other.mapping.accuracy != self.mapping.accuracy:
            raise InvalidQuery(
                f"cannot subtract sketches of accuracy {other.mapping.accuracy} and {self.mapping.accuracy}"
            )
        if not other._count:
            return
        if other._count > self._count or other._zeros > self._zeros:
            raise InvalidQuery("cannot subtract a sketch that was not merged in")
        bins = self._bins if self._bins is not None else self._thaw()
        self._memo = None
        for key, count in other.items():
            left = bins.get(key, 0) - count
            if left > 0:
                bins[key] = left
            elif left == 0:
                del bins[key]
            else:
                raise InvalidQuery("cannot subtract a sketch that was not merged in")
        self._zeros -= other._zeros
        self._count -= other._count

    @property
    def count(self) -> int:
        return self._count

    @property
    def zeros(self) -> int:
        return self._zeros

    @property
    def frozen(self) -> bool:
        return self._bins is None

    def items(self) -> list[tuple[int, int]]:
        """(key, count) pairs of the non-empty bins, in no particular order."""
        if self._bins is not None:
            return list(self._bins.items())
        assert self._frozen is not None
        if len(self._frozen) == 1:
            return list(_decoded(self._frozen[0]))
        summed: dict[int, int] = {}
        get = summed.get
        for part in self._frozen:
            for key, count in _decoded(part):
                summed[key] = get(key, 0) + count
        return list(summed.items())

    def freeze(self) -> None:
        """Drop the dict and keep only the encoded bins: for buckets no event can reach any more.

        Reads decode on the fly; a later :meth:`add` or :meth:`merge` thaws it again, so
        freezing never changes a result, only memory and speed.
        """
        if self._bins is None:
            return
        w = Writer()
        _encode_bins(w, self._zeros, self._bins)
        self._frozen = [bytes(w.buf)]
        self._bins = None

    def compact(self) -> None:
        """Fold the parts merged into a frozen sketch into one (same content, fewer bytes)."""
        if self._frozen is not None and len(self._frozen) > 1:
            w = Writer()
            _encode_bins(w, self._zeros, dict(self.items()))
            self._frozen = [bytes(w.buf)]

    def thaw(self) -> None:
        """Back to a dict, for a bucket that will take more values (restored open buckets)."""
        if self._bins is None:
            self._thaw()

    def _thaw(self) -> dict[int, int]:
        assert self._frozen is not None
        self._bins = dict(self.items())
        self._frozen = None
        self._memo = None
        return self._bins

    def copy(self) -> QuantileSketch:
        twin = QuantileSketch(self.mapping)
        twin.merge(self)
        return twin

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 <= q <= 1), or None when empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Several quantiles for one sort of the bins, numpy 'linear' rank convention."""
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise InvalidQuery(f"quantile must be in [0, 1], got {q!r}")
        n = self._count
        if n == 0:
            return [None] * len(qs)
        if self._bins is None:
            key = tuple(qs)
            if self._memo is None:
                self._memo = {}
            known = self._memo.get(key)
            if known is None:
                if len(self._memo) >= 8:
                    self._memo.clear()
                known = self._memo[key] = self._quantiles(qs)
            return list(known)
        return self._quantiles(qs)

    def _quantiles(self, qs: Sequence[float]) -> list[float | None]:
        n = self._count
        pairs = sorted(self.items())
        keys = [key for key, _ in pairs]
        cumulative = list(accumulate(count for _, count in pairs))
        zeros = self._zeros
        value = self.mapping.value

        def at_rank(rank: int) -> float:
            if rank < zeros:
                return 0.0
            return value(keys[bisect_right(cumulative, rank - zeros)])

        out: list[float | None] = []
        for q in qs:
            rank = q * (n - 1)
            low = math.floor(rank)
            frac = rank - low
            low_value = at_rank(low)
            if frac > 0.0 and low + 1 < n:
                out.append(low_value + (at_rank(low + 1) - low_value) * frac)
            else:
                out.append(low_value)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return (
            self.mapping.accuracy == other.mapping.accuracy
            and self._zeros == other._zeros
            and self._count == other._count
            and sorted(self.items()) == sorted(other.items())
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"QuantileSketch(accuracy={self.mapping.accuracy}, count={self._count})"

    def write(self, w: Writer) -> None:
        """The bins only; the accuracy is the owner's to write once."""
        if self._frozen is not None:
            self.compact()
            w.raw(self._frozen[0])
        else:
            assert self._bins is not None
            _encode_bins(w, self._zeros, self._bins)

    @classmethod
    def read(cls, r: Reader, mapping: SketchMapping) -> QuantileSketch:
        """Restore frozen: the encoded bins are the compact in-memory form already."""
        start = r.mark()
        zeros, pairs = _decode_bins(r)
        sketch = cls(mapping)
        sketch._bins = None
        sketch._frozen = [r.since(start)]
        sketch._zeros = zeros
        sketch._count = zeros + sum(count for _, count in pairs)
        return sketch

    def to_bytes(self) -> bytes:
        w = Writer()
        w.f64(self.mapping.accuracy)
        self.write(w)
        return frame(KIND_SKETCH, w.buf)

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        r = unframe(data, KIND_SKETCH)
        accuracy = r.f64()
        if not 1e-4 <= accuracy <= 0.2:
            raise r.fail(f"sketch accuracy {accuracy}")
        sketch = cls.read(r, mapping_for(accuracy))
        r.end()
        return sketch


def _encode_bins(w: Writer, zeros: int, bins: dict[int, int]) -> None:
    """Dense zigzag deltas of the counts over the key span, or sparse (key step, count) pairs.

    Dense wins once at least half the span is occupied (busy buckets: neighbouring counts
    are close, so deltas fit one byte); sparse wins for quiet buckets with scattered keys.
    """
    w.uint(zeros)
    live = sorted(item for item in bins.items() if item[1])
    w.uint(len(live))
    if not live:
        return
    low = live[0][0]
    span = live[-1][0] - low + 1
    w.sint(low)
    if span <= 2 * len(live):
        w.raw(bytes((_MODE_DENSE,)))
        w.uint(span)
        dense = [0] * (span + 1)
        for key, count in live:
            dense[key - low + 1] = count
        w.uints([d + d if d >= 0 else -d - d - 1 for d in map(sub, dense[1:], dense[:-1])])
    else:
        w.raw(bytes((_MODE_SPARSE,)))
        keys = [key for key, _ in live]
        w.uints(list(map(sub, keys[1:], keys[:-1])))
        w.uints([count for _, count in live])


@functools.lru_cache(maxsize=2048)
def _decoded(part: bytes) -> tuple[tuple[int, int], ...]:
    """The bins of one encoded part, remembered by content.

    A sliding 30-minute p95 merges the same closed minutes again at every judgment, and a
    7-day baseline the same coarse buckets: decoding them each time was most of a replay's
    judging cost. Parts are immutable bytes (their hash is cached by Python), so a hit
    costs a hash lookup and one comparison; 2,048 parts of a few hundred bins each is a
    few megabytes at most.
    """
    return tuple(_decode_bins(Reader(part, "quantile sketch"))[1])


def _decode_bins(r: Reader) -> tuple[int, list[tuple[int, int]]]:
    zeros = r.uint()
    nbins = r.uint()
    if nbins == 0:
        return zeros, []
    low = r.sint()
    mode = r.raw(1)[0]
    if mode == _MODE_DENSE:
        span = r.bounded(nbins, min(2 * nbins, _MAX_KEY_SPAN), "dense sketch span")
        deltas = r.uints()
        if len(deltas) != span:
            raise r.fail(f"dense sketch has {len(deltas)} counts for a span of {span}")
        counts = accumulate((v >> 1) ^ -(v & 1) for v in deltas)
        pairs = [(low + i, c) for i, c in enumerate(counts) if c]
        if any(c < 0 for _, c in pairs):
            raise r.fail("negative bin count")
    elif mode == _MODE_SPARSE:
        steps = r.uints()
        counts_list = r.uints()
        if len(steps) != nbins - 1 or len(counts_list) != nbins:
            raise r.fail("sparse sketch lengths disagree")
        keys = list(accumulate(steps, initial=low))
        pairs = [(k, c) for k, c in zip(keys, counts_list, strict=True) if c]
        if len(pairs) != nbins or (steps and min(steps) == 0):
            raise r.fail("sparse sketch has empty or repeated bins")
    else:
        raise r.fail(f"sketch mode {mode}")
    if len(pairs) != nbins:
        raise r.fail(f"sketch announces {nbins} bins, holds {len(pairs)}")
    return zeros, pairs
