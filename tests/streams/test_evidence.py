"""Evidence reservoir and complaint log."""

from __future__ import annotations

import uuid

import pytest

from rollwatch.streams import EVIDENCE_KINDS, ComplaintLog, CorruptState, EvidenceReservoir
from rollwatch.streams.codec import Reader, Writer


def test_keeps_the_last_items_of_each_kind_apart() -> None:
    reservoir = EvidenceReservoir(per_kind=3, sample_chars=5)
    for i in range(10):
        reservoir.add("error", f"e{i}", 1000 + i)
    reservoir.add("complaint", "c1", 5, sample="a very long complaint")
    assert [e.event_id for e in reservoir.items("error")] == ["e7", "e8", "e9"]
    assert reservoir.items("complaint")[0].sample == "a ver"
    assert [e.event_id for e in reservoir.items()] == ["c1", "e7", "e8", "e9"]
    assert [e.event_id for e in reservoir.between("error", 1008, 2000)] == ["e8", "e9"]


def test_round_trip_packs_uuid_and_hex_ids() -> None:
    reservoir = EvidenceReservoir(per_kind=20)
    for kind in EVIDENCE_KINDS:
        for i in range(20):
            reservoir.add(kind, str(uuid.uuid4()), 1_700_000_000_000 + i * 977, uuid.uuid4().hex, None, None)
    data = reservoir.to_bytes()
    assert EvidenceReservoir.from_bytes(data) == reservoir
    assert len(data) < 120 * (17 + 17 + 1 + 3 + 1) + 64
    odd = EvidenceReservoir()
    odd.add("complaint", "ÉVÉNEMENT-1", -5, "", "call-7", "ça ne marche pas")
    assert EvidenceReservoir.from_bytes(odd.to_bytes()) == odd


def test_complaint_log_counts_exactly_until_it_overflows() -> None:
    log = ComplaintLog(size=3)
    for ts in (10, 20, 30):
        log.add(ts)
    assert log.count_between(15, 31) == (2, True)
    log.add(40)
    assert log.count_between(0, 100) == (3, False)
    w = Writer()
    log.write(w)
    assert ComplaintLog.read(Reader(bytes(w.buf))) == log


def test_corrupt_reservoir() -> None:
    reservoir = EvidenceReservoir(per_kind=2)
    reservoir.add("error", "e1", 1)
    with pytest.raises(CorruptState):
        EvidenceReservoir.from_bytes(reservoir.to_bytes()[:-6])
