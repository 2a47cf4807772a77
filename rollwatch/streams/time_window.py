"""Sliding time windows made of fixed buckets in two tiers, queried by explicit event time.

Layout. A *fine* ring holds the newest ``fine.buckets`` buckets of ``fine.bucket_ms``
(default 64 x 1 minute), indexed by ``ts // bucket_ms``. When the ring advances, a
bucket that falls out of it is folded ("spilled") into the *coarse* bucket that
contains it (default 6 hours, 29 kept). Every accepted event is therefore counted in
exactly one place: its fine bucket while that is in the ring, its coarse bucket after.
Coarse buckets keep their sketches encoded (spilled minutes are appended as encoded
parts and folded together once the bucket is complete), so the 7-day tier costs bytes,
not dicts, in memory.

Which buckets a query ``[start_ms, end_ms)`` covers: **a bucket counts iff its start
lies in [start_ms, end_ms)**, in each tier. So with minute buckets:

* an aligned query (``now_ms`` on a minute boundary) covers exactly the minutes of
  [now - span, now);
* an unaligned one covers the ``span/bucket`` minutes whose starts fall in the range,
  i.e. [ceil(start), ceil(end)) to the minute: the minute holding ``now_ms`` is in,
  the minute holding ``now_ms - span`` is out.

Data that has spilled to the coarse tier (older than the fine ring) counts at coarse
granularity under the same rule: a 6-hour bucket counts iff its start is in range.
For the default 7-day baseline [now - 30 min - 7 d, now - 30 min) that means: the recent
end is minute-exact, and the old end starts at the first 6-hour boundary at or after
``now - 30 min - 7 d`` (so it covers 6 d 18 h to 7 d of history).

Closing. A fine bucket is *closed* once the watermark passes its end: nothing can land
in it any more, so its sketch is frozen (encoded bytes instead of a dict) and the
owner's ``on_close`` hook sees it (drift detectors are fed per closed bucket).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Final

from rollwatch.streams.bucket import INT_FIELDS, Bucket, WindowStats
from rollwatch.streams.codec import KIND_TIME_WINDOWS, Reader, Writer, frame, unframe
from rollwatch.streams.config import WindowSpec
from rollwatch.streams.errors import InvalidQuery
from rollwatch.streams.sketch import QuantileSketch, SketchMapping, mapping_for

# Bucket and WindowStats live in ``bucket``; re-exported here, where callers first found them.
__all__ = ["Bucket", "TimeWindows", "WindowStats"]

_SLOTS: Final = 6
"""Running merges kept per route: a gate asks a handful (30 min, 60 min, 7-day baseline)."""
_SUMMED_NAMES: Final = (*INT_FIELDS, "latency_sum", "quality_sum", "quality_sq")
_SUMMED: Final = attrgetter(*_SUMMED_NAMES)


class _Slot:
    """A running merge of some buckets' sketches of one tier: what it holds, by bucket index.

    It slides: a query whose buckets overlap it adds the new ones and subtracts the ones
    that left (:meth:`QuantileSketch.subtract` is exact), so a 30-minute p95 asked every
    minute costs two bucket merges, not thirty. Members are held by identity: a bucket
    that was replaced is a different member. ``changed`` is the tier's count of changes
    to buckets already merged (a lagging watermark reopening one); a slot taken before
    such a change is never reused.
    """

    __slots__ = ("changed", "members", "sketch", "tier")

    def __init__(self, tier: int, changed: int, mapping: SketchMapping) -> None:
        self.tier = tier
        self.changed = changed
        self.members: dict[int, QuantileSketch] = {}
        self.sketch = QuantileSketch(mapping)

    def distance(self, wanted: dict[int, QuantileSketch]) -> int:
        members = self.members
        gone = sum(1 for index, sketch in members.items() if wanted.get(index) is not sketch)
        new = sum(1 for index, sketch in wanted.items() if members.get(index) is not sketch)
        return gone + new

    def slide(self, wanted: dict[int, QuantileSketch]) -> None:
        members, sketch = self.members, self.sketch
        for index in [i for i, s in members.items() if wanted.get(i) is not s]:
            sketch.subtract(members.pop(index))
        for index, other in wanted.items():
            if members.get(index) is not other:
                sketch.merge(other)
                members[index] = other


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class TimeWindows:
    """The two bucket tiers of one route; see the module docstring for the query rule."""

    __slots__ = (
        "_changed",
        "_coarse",
        "_coarse_done_below",
        "_coarse_newest",
        "_fine",
        "_last",
        "_newest",
        "_open_from",
        "_slots",
        "coarse",
        "expired",
        "fine",
        "mapping",
        "on_close",
    )

    def __init__(self, fine: WindowSpec, coarse: WindowSpec, mapping: SketchMapping | float = 0.01) -> None:
        if coarse.bucket_ms % fine.bucket_ms:
            raise InvalidQuery("coarse bucket width must be a multiple of the fine one")
        self.fine = fine
        self.coarse = coarse
        self.mapping = mapping if isinstance(mapping, SketchMapping) else mapping_for(mapping)
        self.on_close: Callable[[Bucket], None] | None = None
        self.expired = 0
        """Coarse buckets dropped for age: normal once the coarse horizon has passed."""
        self._fine: list[Bucket | None] = [None] * fine.buckets
        self._coarse: list[Bucket | None] = [None] * coarse.buckets
        self._newest: int | None = None
        self._coarse_newest: int | None = None
        self._open_from: int | None = None
        self._coarse_done_below: int | None = None
        self._last: Bucket | None = None
        self._changed = [0, 0]
        """Per tier (fine, coarse): changes to buckets a running merge may hold (closed fine
        buckets reopened, complete coarse ones added to); a bucket leaving is not a change."""
        self._slots: list[_Slot] = []

    # -- updates ---------------------------------------------------------------------------

    def bucket_for(self, ts_ms: int) -> Bucket | None:
        """The fine bucket an event at ``ts_ms`` goes into, or None if it is older than the ring."""
        index = ts_ms // self.fine.bucket_ms
        last = self._last
        if last is not None and last.index == index:
            return last
        newest = self._newest
        if newest is None or index > newest:
            self._advance(index)
        elif index <= newest - self.fine.buckets:
            return None
        slot = index % self.fine.buckets
        bucket = self._fine[slot]
        if bucket is None:
            bucket = self._fine[slot] = Bucket(index, self.mapping)
        if self._open_from is not None and index < self._open_from:
            # A closed bucket reopened (only with a lagging watermark): every event into it
            # is a change, so it is never the fast path's ``_last``.
            self._changed[0] += 1
            return bucket
        self._last = bucket
        return bucket

    def close_until(self, watermark_ms: int) -> None:
        """Close every fine bucket that ends at or before ``watermark_ms``."""
        self._close_below(watermark_ms // self.fine.bucket_ms)

    def next_close_ms(self) -> int | None:
        """The smallest watermark that would close another bucket (a cheap per-event test)."""
        if self._open_from is None:
            return None
        return (self._open_from + 1) * self.fine.bucket_ms

    def _close_below(self, target: int) -> None:
        newest = self._newest
        open_from = self._open_from
        if newest is None or open_from is None or target <= open_from:
            return
        ring = self._fine
        size = self.fine.buckets
        hook = self.on_close
        for index in range(max(open_from, newest - size + 1), min(target, newest + 1)):
            bucket = ring[index % size]
            if bucket is not None and bucket.index == index:
                bucket.latency.freeze()
                if hook is not None:
                    hook(bucket)
        self._open_from = target
        if self._last is not None and self._last.index < target:
            self._last = None

    def _advance(self, index: int) -> None:
        size = self.fine.buckets
        newest = self._newest
        if newest is None:
            self._newest = index
            self._open_from = index - size + 1
            return
        oldest_kept = index - size + 1
        # What falls out of the ring must be closed first, even if the watermark has not
        # passed it (only possible when a caller drives a route with a lagging watermark).
        self._close_below(oldest_kept)
        self._newest = index
        ring = self._fine
        for old in range(newest - size + 1, min(oldest_kept, newest + 1)):
            slot = old % size
            bucket = ring[slot]
            if bucket is not None and bucket.index == old:
                ring[slot] = None
                self._spill(bucket)
        if self._last is not None and self._last.index < oldest_kept:
            self._last = None
        self._freeze_coarse(oldest_kept * self.fine.bucket_ms // self.coarse.bucket_ms)

    def _spill(self, bucket: Bucket) -> None:
        coarse_index = bucket.index * self.fine.bucket_ms // self.coarse.bucket_ms
        size = self.coarse.buckets
        slot = coarse_index % size
        newest = self._coarse_newest
        if newest is None or coarse_index > newest:
            self._expire_coarse(newest, coarse_index)
            self._coarse_newest = coarse_index
        target = self._coarse[slot]
        if target is None or target.index < coarse_index:
            if target is not None:  # only a pre-expiry leftover of this very slot
                self.expired += 1
            target = self._coarse[slot] = Bucket(coarse_index, self.mapping)
            target.latency.freeze()  # so spilled minutes merge in as encoded parts
        elif target.index > coarse_index:
            self.expired += 1
            return
        done = self._coarse_done_below
        if done is not None and coarse_index < done:
            self._changed[1] += 1  # a complete bucket changed (a caller's lagging watermark)
        target.merge(bucket)

    def _expire_coarse(self, old_newest: int | None, new_newest: int) -> None:
        """Drop the coarse buckets that fall out of the ring as its newest index moves on."""
        if old_newest is None:
            return
        size = self.coarse.buckets
        oldest_kept = new_newest - size + 1
        for index in range(old_newest - size + 1, min(old_newest + 1, oldest_kept)):
            slot = index % size
            bucket = self._coarse[slot]
            if bucket is not None and bucket.index == index:
                self._coarse[slot] = None
                self.expired += 1

    def _freeze_coarse(self, below: int) -> None:
        done = self._coarse_done_below
        if done is not None and below <= done:
            return
        size = self.coarse.buckets
        start = below - size if done is None else max(done, below - size)
        for index in range(start, below):
            bucket = self._coarse[index % size]
            if bucket is not None and bucket.index == index:
                bucket.latency.compact()  # same content in fewer bytes: not a change
        self._coarse_done_below = below

    # -- queries ---------------------------------------------------------------------------

    def buckets(self, start_ms: int, end_ms: int) -> tuple[list[Bucket], list[Bucket]]:
        """(fine, coarse) buckets whose start lies in [start_ms, end_ms), oldest first."""
        if start_ms > end_ms:
            raise InvalidQuery(f"window start {start_ms} is after its end {end_ms}")
        fine: list[Bucket] = []
        coarse: list[Bucket] = []
        if self._newest is not None:
            width = self.fine.bucket_ms
            size = self.fine.buckets
            low = max(_ceil_div(start_ms, width), self._newest - size + 1)
            high = min(_ceil_div(end_ms, width), self._newest + 1)
            for index in range(low, high):
                bucket = self._fine[index % size]
                if bucket is not None and bucket.index == index:
                    fine.append(bucket)
        if self._coarse_newest is not None:
            width = self.coarse.bucket_ms
            size = self.coarse.buckets
            low = max(_ceil_div(start_ms, width), self._coarse_newest - size + 1)
            high = min(_ceil_div(end_ms, width), self._coarse_newest + 1)
            for index in range(low, high):
                bucket = self._coarse[index % size]
                if bucket is not None and bucket.index == index:
                    coarse.append(bucket)
        return fine, coarse

    def stats(self, start_ms: int, end_ms: int) -> WindowStats:
        """Counts and sums over [start_ms, end_ms) (bucket rule in the module docstring).

        A judge pass asks for ~20 windows of up to 60 buckets: the sums run column by
        column in C (one ``attrgetter`` row per bucket, ``zip``, ``sum``), in the same
        order as a loop would add them, so float sums are bit-identical.
        """
        fine, coarse = self.buckets(start_ms, end_ms)
        covered = fine + coarse
        if not covered:
            return WindowStats(start_ms, end_ms, 0)
        sums = [sum(column) for column in zip(*map(_SUMMED, covered), strict=True)]
        return WindowStats(start_ms, end_ms, len(covered), **dict(zip(_SUMMED_NAMES, sums, strict=True)))

    def latency_sketch(self, start_ms: int, end_ms: int) -> QuantileSketch:
        """One sketch of every latency in [start_ms, end_ms), merged from the buckets.

        Buckets that can no longer change (closed fine buckets, complete coarse ones) are
        merged once and cached by range, so a 30-minute p95 or a 7-day baseline asked at
        every timer tick costs a dict copy plus the few open buckets, not dozens of decodes.
        """
        fine, coarse = self.buckets(start_ms, end_ms)
        merged = QuantileSketch(self.mapping)
        done = self._coarse_done_below
        complete = 0 if done is None else sum(1 for b in coarse if b.index < done)
        self._merge_cached(merged, coarse[:complete], 1)
        for bucket in coarse[complete:]:
            merged.merge(bucket.latency)
        open_from = self._open_from
        closed = 0 if open_from is None else sum(1 for b in fine if b.index < open_from)
        self._merge_cached(merged, fine[:closed], 0)
        for bucket in fine[closed:]:
            merged.merge(bucket.latency)
        return merged

    def latency_quantiles(self, qs: tuple[float, ...], start_ms: int, end_ms: int) -> list[float | None]:
        """Quantiles of [start_ms, end_ms); one closed bucket answers from its own memo.

        That makes a walk over past minutes (how long has p95 been high?) cost microseconds
        a minute once each minute has been asked once.
        """
        fine, coarse = self.buckets(start_ms, end_ms)
        if len(fine) + len(coarse) == 1:
            only = (fine or coarse)[0]
            if only.latency.frozen:
                return only.latency.quantiles(qs)
        return self.latency_sketch(start_ms, end_ms).quantiles(qs)

    def _merge_cached(self, into: QuantileSketch, buckets: list[Bucket], tier: int) -> None:
        if not buckets:
            return
        if len(buckets) == 1:
            into.merge(buckets[0].latency)
            return
        wanted = {bucket.index: bucket.latency for bucket in buckets}
        changed = self._changed[tier]
        slots = self._slots
        best: _Slot | None = None
        cost = len(wanted)
        for slot in slots:
            if slot.tier == tier and slot.changed == changed:
                distance = slot.distance(wanted)
                if distance < cost:
                    best, cost = slot, distance
                    if not distance:
                        break
        if best is None:
            best = _Slot(tier, changed, self.mapping)
            if len(slots) >= _SLOTS:
                # Stale slots (taken before a change) go first, then the least recently used.
                stale = [s for s in slots if s.changed != self._changed[s.tier]]
                slots.remove(stale[0] if stale else slots[0])
        else:
            slots.remove(best)
        slots.append(best)
        best.slide(wanted)
        into.merge(best.sketch)

    @property
    def newest_index(self) -> int | None:
        """Index of the newest fine bucket seen (``ts // fine.bucket_ms``), None before any event."""
        return self._newest

    def oldest_fine_ms(self) -> int | None:
        """Start of the oldest time the fine ring still holds; older data is at coarse granularity."""
        if self._newest is None:
            return None
        return (self._newest - self.fine.buckets + 1) * self.fine.bucket_ms

    # -- serialization ---------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeWindows):
            return NotImplemented
        return (
            self.fine == other.fine
            and self.coarse == other.coarse
            and self.mapping.accuracy == other.mapping.accuracy
            and self._state_key() == other._state_key()
            and self._live() == other._live()
        )

    __hash__ = None  # type: ignore[assignment]

    def _state_key(self) -> tuple[int | None, ...]:
        return (self._newest, self._coarse_newest, self._open_from, self._coarse_done_below, self.expired)

    def _live(self) -> tuple[list[Bucket], list[Bucket]]:
        fine = sorted((b for b in self._fine if b is not None), key=lambda b: b.index)
        coarse = sorted((b for b in self._coarse if b is not None), key=lambda b: b.index)
        return fine, coarse

    def write(self, w: Writer) -> None:
        w.uint(self.fine.bucket_ms)
        w.uint(self.fine.buckets)
        w.uint(self.coarse.bucket_ms)
        w.uint(self.coarse.buckets)
        w.f64(self.mapping.accuracy)
        w.uint(self.expired)
        newest = self._newest
        w.flag(newest is not None)
        if newest is None:
            return
        assert self._open_from is not None
        w.sint(newest)
        w.sint(newest - self._open_from)
        fine, coarse = self._live()
        w.uint(len(fine))
        for bucket in fine:
            w.uint(newest - bucket.index)
            bucket.write(w)
        w.flag(self._coarse_newest is not None)
        if self._coarse_newest is not None:
            w.sint(self._coarse_newest)
        w.flag(self._coarse_done_below is not None)
        if self._coarse_done_below is not None:
            w.sint(self._coarse_done_below)
        w.uint(len(coarse))
        for bucket in coarse:
            assert self._coarse_newest is not None
            w.uint(self._coarse_newest - bucket.index)
            bucket.write(w)

    @classmethod
    def read(cls, r: Reader) -> TimeWindows:
        try:
            fine = WindowSpec(r.uint(), r.uint())
            coarse = WindowSpec(r.uint(), r.uint())
        except Exception as exc:
            raise r.fail(f"bad window spec ({exc})") from None
        accuracy = r.f64()
        if not 1e-4 <= accuracy <= 0.2:
            raise r.fail(f"sketch accuracy {accuracy}")
        if coarse.bucket_ms % fine.bucket_ms:
            raise r.fail("coarse bucket width is not a multiple of the fine one")
        windows = cls(fine, coarse, mapping_for(accuracy))
        windows.expired = r.uint()
        if not r.flag():
            return windows
        newest = r.sint()
        windows._newest = newest
        windows._open_from = newest - r.sint()
        for _ in range(r.bounded(0, fine.buckets, "fine bucket count")):
            index = newest - r.bounded(0, fine.buckets - 1, "fine bucket offset")
            slot = index % fine.buckets
            if windows._fine[slot] is not None:
                raise r.fail(f"fine bucket {index} appears twice")
            bucket = windows._fine[slot] = Bucket.read(r, index, windows.mapping)
            if index >= windows._open_from:
                bucket.latency.thaw()
            else:
                bucket.latency.freeze()
        if r.flag():
            windows._coarse_newest = r.sint()
        if r.flag():
            windows._coarse_done_below = r.sint()
        count = r.bounded(0, coarse.buckets, "coarse bucket count")
        if count and windows._coarse_newest is None:
            raise r.fail("coarse buckets without a newest index")
        for _ in range(count):
            assert windows._coarse_newest is not None
            index = windows._coarse_newest - r.bounded(0, coarse.buckets - 1, "coarse bucket offset")
            slot = index % coarse.buckets
            if windows._coarse[slot] is not None:
                raise r.fail(f"coarse bucket {index} appears twice")
            bucket = windows._coarse[slot] = Bucket.read(r, index, windows.mapping)
            bucket.latency.freeze()
        return windows

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return frame(KIND_TIME_WINDOWS, w.buf, compress=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> TimeWindows:
        r = unframe(data, KIND_TIME_WINDOWS)
        windows = cls.read(r)
        r.end()
        return windows
