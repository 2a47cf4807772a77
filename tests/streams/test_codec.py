"""The binary form: varints, packed arrays, identifiers, frames and their errors."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwatch.streams import CorruptState, UnsupportedVersion
from rollwatch.streams.codec import FORMAT_VERSION, KIND_ROUTE, KIND_VERSIONS, Reader, Writer, frame, unframe


@settings(max_examples=100, deadline=None)
@given(
    uints=st.lists(st.integers(0, 2**70)),
    sints=st.lists(st.integers(-(2**66), 2**66)),
    floats=st.lists(st.floats(allow_nan=False)),
    packed=st.lists(st.integers(0, 2**64 - 1)),
    texts=st.lists(st.one_of(st.none(), st.text())),
)
def test_fields_round_trip(
    uints: list[int], sints: list[int], floats: list[float], packed: list[int], texts: list[str | None]
) -> None:
    w = Writer()
    for u in uints:
        w.uint(u)
    for s in sints:
        w.sint(s)
    for f in floats:
        w.f64(f)
    w.packed(packed)
    w.uints(uints)
    for t in texts:
        w.opt_text(t)
        w.ident(t)
    r = Reader(bytes(w.buf))
    assert [r.uint() for _ in uints] == uints
    assert [r.sint() for _ in sints] == sints
    assert [r.f64() for _ in floats] == floats
    assert r.packed() == packed
    assert r.uints() == uints
    for t in texts:
        assert r.opt_text() == t
        assert r.ident() == t
    r.end()


@pytest.mark.parametrize(
    ("ident", "size"),
    [
        ("3f2a6c1e-9a7b-4c1d-8e2f-0123456789ab", 17),
        ("4bf92f3577b34da6a3ce929d0e0e4736", 18),
        ("3F2A6C1E-9A7B-4C1D-8E2F-0123456789AB", 38),
        ("order-42", 10),
        ("", 2),
    ],
)
def test_identifiers_pack_when_they_can(ident: str, size: int) -> None:
    w = Writer()
    w.ident(ident)
    assert len(w.buf) == size
    assert Reader(bytes(w.buf)).ident() == ident


def test_reader_refuses_overruns_and_leftovers() -> None:
    with pytest.raises(CorruptState, match="truncated varint"):
        Reader(b"\x80").uint()
    with pytest.raises(CorruptState, match="more bytes"):
        Reader(b"\x05ab").blob()
    with pytest.raises(CorruptState, match="trailing"):
        Reader(b"\x01\x02").end()
    with pytest.raises(CorruptState, match="outside"):
        Reader(b"\x09").bounded(0, 3, "size")
    with pytest.raises(CorruptState, match="too long"):
        Reader(b"\xff" * 20).uint()


def test_frame_checks_magic_version_kind_and_checksum() -> None:
    data = frame(KIND_ROUTE, b"payload")
    assert unframe(data, KIND_ROUTE).raw(7) == b"payload"
    with pytest.raises(CorruptState, match="magic"):
        unframe(b"XX" + data[2:], KIND_ROUTE)
    newer = bytearray(data)
    beyond = KIND_VERSIONS.get(KIND_ROUTE, FORMAT_VERSION) + 1
    newer[3] = beyond
    with pytest.raises(UnsupportedVersion, match=f"version {beyond}"):
        unframe(bytes(newer), KIND_ROUTE)
    with pytest.raises(CorruptState, match="checksum"):
        unframe(data[:-1] + bytes([data[-1] ^ 0xFF]), KIND_ROUTE)
    with pytest.raises(CorruptState, match="must be bytes"):
        unframe("text", KIND_ROUTE)  # type: ignore[arg-type]


def test_compressed_frames_are_capped_and_checked() -> None:
    data = frame(KIND_ROUTE, b"a" * 10_000, compress=True)
    assert len(data) < 200
    assert unframe(data, KIND_ROUTE).raw(10_000) == b"a" * 10_000
    head = data[:5]
    garbage = head + b"not zlib at all"
    garbage += zlib.crc32(garbage).to_bytes(4, "little")
    with pytest.raises(CorruptState, match="compressed"):
        unframe(garbage, KIND_ROUTE)
