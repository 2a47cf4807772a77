"""DedupRing: exact "last N distinct ids" memory, its version 2 frame, and version 1 checkpoints.

The two ``data/*-v1-blake2b.bin`` files were written by the code before the switch to
xxHash3 (commit 34ac03d): a dedup ring of size 4 fed ids ``id-0`` .. ``id-5``, and a
workflow (dedup ring of 8) fed calls ``id-0`` .. ``id-11`` one second apart (every third
on route ``r2`` as the candidate, the rest on ``r1`` as the control) and a rejected review
``id-12`` on ``r1``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwatch.events import Event
from rollwatch.streams import (
    Applied,
    BatchResult,
    CorruptState,
    DedupRing,
    UnsupportedVersion,
    WorkflowState,
)
from rollwatch.streams.codec import KIND_DEDUP, KIND_VERSIONS, KIND_WORKFLOW, Writer, frame
from rollwatch.streams.dedup import DEDUP_VERSION, KEY_MASK, id_hash

from .factories import T0, call

DATA = Path(__file__).parent / "data"


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 12), ids=st.lists(st.integers(0, 30).map(lambda i: f"id-{i}"), max_size=120))
def test_remembers_exactly_the_last_distinct_ids(size: int, ids: list[str]) -> None:
    ring = DedupRing(size)
    recent: deque[str] = deque(maxlen=size)
    for event_id in ids:
        assert ring.check_and_add(event_id) == (event_id in recent)
        if event_id not in recent:
            recent.append(event_id)
        assert len(ring) == len(recent)
    assert {i for i in map("id-{}".format, range(31)) if i in ring} == set(recent)
    twin = DedupRing.from_bytes(ring.to_bytes())
    assert twin == ring and len(twin) == len(ring)
    assert all(i in twin for i in recent)


def test_keys_are_the_low_60_bits_of_seedless_xxh3_64() -> None:
    """Checkpoints hold these keys: they must not change between processes or releases."""
    assert id_hash("") == 0x2D06800538D394C2 & KEY_MASK  # XXH3_64bits("") from the xxHash test vectors
    assert id_hash("id-0") == 0xD46FE479D3F407  # pinned: a change here orphans every checkpoint
    assert len({id_hash(f"id-{i}") for i in range(10_000)}) == 10_000


def test_frame_is_version_2_and_refuses_unknown_versions() -> None:
    ring = DedupRing(4)
    ring.check_and_add("a")
    data = ring.to_bytes()
    assert data[3] == DEDUP_VERSION == KIND_VERSIONS[KIND_DEDUP] == 2
    newer = bytearray(data)
    newer[3] = 3
    with pytest.raises(UnsupportedVersion, match="version 3, this code reads versions 1-2"):
        DedupRing.from_bytes(bytes(newer))


def _v2_frame(size: int, legacy: list[bytes], keys: list[int]) -> bytes:
    w = Writer()
    w.uint(size)
    w.uint(len(legacy))
    w.raw(b"".join(legacy))
    w.uint(len(keys))
    w.raw(b"".join(k.to_bytes(8, "little") for k in keys))
    return frame(KIND_DEDUP, w.buf)


def test_corrupt_v2_rings_are_refused() -> None:
    assert DedupRing.from_bytes(_v2_frame(4, [b"\x01" * 8], [5, 6])).legacy == 1
    with pytest.raises(CorruptState, match="repeated"):
        DedupRing.from_bytes(_v2_frame(4, [], [5, 5]))
    with pytest.raises(CorruptState, match="60 bits"):
        DedupRing.from_bytes(_v2_frame(4, [], [1 << 63]))
    with pytest.raises(CorruptState, match="dedup fill"):
        DedupRing.from_bytes(_v2_frame(2, [b"\x01" * 8], [5, 6]))


def test_version_1_ring_is_read_as_legacy_digests_and_ages_out() -> None:
    ring = DedupRing.from_bytes((DATA / "dedup-v1-blake2b.bin").read_bytes())
    assert (ring.size, len(ring), ring.legacy) == (4, 4, 4)
    assert [f"id-{i}" in ring for i in range(6)] == [False, False, True, True, True, True]
    assert ring.check_and_add("id-3")  # a redelivery across the upgrade is still caught
    assert not ring.check_and_add("new-0")  # forgets id-2, the oldest
    assert ring.legacy == 3 and "id-2" not in ring and "id-3" in ring
    mid = DedupRing.from_bytes(ring.to_bytes())  # a checkpoint taken mid-transition
    assert mid == ring and mid.legacy == 3 and mid.to_bytes()[3] == 2
    for r in (ring, mid):
        assert [r.check_and_add(f"new-{i}") for i in range(1, 4)] == [False] * 3
        assert r.legacy == 0 and "id-5" not in r
        assert [f"new-{i}" in r for i in range(4)] == [True] * 4
    assert ring == mid


def test_version_1_workflow_checkpoint_restores_windows_and_redeliveries() -> None:
    state = WorkflowState.from_bytes((DATA / "workflow-v1-blake2b.bin").read_bytes())
    r1, r2 = state.route("r1"), state.route("r2")
    assert r1 is not None and r2 is not None
    assert (r1.calls, r1.reviews, r1.review_rejections.count, r2.calls) == (8, 1, 1, 4)
    assert state.control is r1 and state.candidate is r2
    assert state.config.dedup_ids == 8
    # The ring of 8 held id-5 .. id-12: redeliveries of those are dropped, older ids are new.
    redelivered = [call(T0 + (i % 12) * 1000, event_id=f"id-{i}", route="r1") for i in (12, 5, 9, 4)]
    assert state.apply_many(redelivered) == BatchResult(applied=1, duplicate=3)
    assert state._dedup.legacy == 7
    fresh = [call(T0 + 13_000 + i, event_id=f"n{i}", route="r1") for i in range(7)]
    assert state.apply_many(fresh) == BatchResult(applied=7)
    assert state._dedup.legacy == 0
    data = state.to_bytes()
    assert data[3] == KIND_VERSIONS[KIND_WORKFLOW] == 3
    again = WorkflowState.from_bytes(data)
    assert again == state
    assert again.apply(call(T0 + 20_000, event_id="n3")) is Applied.DUPLICATE


def _with_foreign_and_arms(events: list[Event], flags: list[int]) -> list[Event]:
    out: list[Event] = []
    for event, flag in zip(events, flags + [0] * len(events), strict=False):
        if flag == 1:
            out.append(replace(event, workflow="other"))
        elif flag == 2:
            out.append(replace(event, arm="candidate" if event.route == "r2" else "control"))
        else:
            out.append(event)
    return out


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    size=st.integers(1, 40),
    lateness=st.sampled_from([0, 3_000]),
    batch=st.integers(1, 50),
)
def test_apply_many_matches_apply_event_by_event(data: st.DataObject, size: int, lateness: int, batch: int) -> None:
    """apply_many inlines the dedup, route lookup and arm learning of apply: same results, same bytes."""
    from .factories import SMALL, event_streams

    config = replace(SMALL, dedup_ids=size, allowed_lateness_ms=lateness)
    events = data.draw(event_streams(max_size=100))
    events = _with_foreign_and_arms(events, data.draw(st.lists(st.integers(0, 6), max_size=100)))
    one, many = WorkflowState("wf", config), WorkflowState("wf", config)
    fates = [one.apply(event) for event in events]
    total = BatchResult()
    for i in range(0, len(events), batch):
        got = many.apply_many(events[i : i + batch])
        total = BatchResult(*(a + b for a, b in zip(_fields(total), _fields(got), strict=True)))
    assert _fields(total) == tuple(fates.count(fate) for fate in Applied)
    assert many.to_bytes() == one.to_bytes()
    assert (many.arm_route("control"), many.arm_route("candidate")) == (
        one.arm_route("control"),
        one.arm_route("candidate"),
    )


def _fields(result: BatchResult) -> tuple[int, int, int, int]:
    return result.applied, result.late, result.duplicate, result.foreign
