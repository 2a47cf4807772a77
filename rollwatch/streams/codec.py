"""The compact binary form every state object is written in.

Why a hand-written form rather than orjson: the bulk of a route's state is integer
arrays (bin counts, bit rings, nano-dollar costs) where LEB128 varints and fixed-width
packed arrays take 1-2 bytes per number against 4-12 in JSON text, and floats must
round-trip bit-exactly (JSON would too, but at 17+ characters each). Never pickle:
state bytes cross process and version boundaries and must be safe to load.

A frame is ``b"RW" | kind | version | flags | payload | crc32``. The version is per
kind (:data:`KIND_VERSIONS`): when one kind's layout changes, its version goes up and its
reader learns the old layout too (:attr:`Reader.version` tells it which it has), so old
checkpoints of every other kind stay readable untouched. The CRC covers
everything before it, so a flipped bit is caught here, before any field reaches a
decoder that could be fooled (river's ADWIN, for one, panics on bad bytes). ``flags``
bit 0 says the payload is zlib-compressed; decompression is capped so crafted bytes
cannot exhaust memory.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from array import array
from collections.abc import Sequence
from typing import Final

from rollwatch.streams.errors import CorruptState, StateKindMismatch, UnsupportedVersion

__all__ = [
    "FORMAT_VERSION",
    "KIND_COUNT_WINDOW",
    "KIND_DEDUP",
    "KIND_DRIFT",
    "KIND_EVIDENCE",
    "KIND_ROUTE",
    "KIND_SKETCH",
    "KIND_TASK_COST",
    "KIND_TIME_WINDOWS",
    "KIND_VERSIONS",
    "KIND_WORKFLOW",
    "Reader",
    "Writer",
    "frame",
    "unframe",
]

FORMAT_VERSION: Final = 1
MAGIC: Final = b"RW"
KIND_COUNT_WINDOW: Final = 1
KIND_SKETCH: Final = 2
KIND_TIME_WINDOWS: Final = 3
KIND_TASK_COST: Final = 4
KIND_EVIDENCE: Final = 5
KIND_DRIFT: Final = 6
KIND_ROUTE: Final = 7
KIND_WORKFLOW: Final = 8
KIND_DEDUP: Final = 9
KIND_VERSIONS: Final = {KIND_DEDUP: 2, KIND_WORKFLOW: 3, KIND_TASK_COST: 2, KIND_ROUTE: 2}
"""Kinds past ``FORMAT_VERSION``; each reads every version from 1 up to its own.

2: the dedup ring (alone or inside a workflow) keeps xxHash3 keys instead of BLAKE2b
digests (see ``dedup``).
"""
_KIND_NAMES: Final = {
    KIND_COUNT_WINDOW: "count window",
    KIND_SKETCH: "quantile sketch",
    KIND_TIME_WINDOWS: "time windows",
    KIND_TASK_COST: "task cost window",
    KIND_EVIDENCE: "evidence reservoir",
    KIND_DRIFT: "drift monitor",
    KIND_ROUTE: "route state",
    KIND_WORKFLOW: "workflow state",
    KIND_DEDUP: "dedup ring",
}
_FLAG_ZLIB: Final = 1
_HEADER: Final = 5
_MAX_INFLATED: Final = 256 * 1024 * 1024
_F64: Final = struct.Struct("<d")
_WIDTH_CODES: Final = {1: "B", 2: "H", 4: "I", 8: "Q"}
_ID_NONE: Final = 0
_ID_TEXT: Final = 1
_ID_UUID: Final = 2
_ID_HEX: Final = 3


class Writer:
    """Appends fields to a growing buffer; the matching :class:`Reader` reads them in order."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def uint(self, value: int) -> None:
        """An unsigned LEB128 varint: 1 byte below 128, 2 below 16384."""
        if value < 0:
            raise ValueError(f"uint field must be >= 0, got {value}")
        buf = self.buf
        while value >= 0x80:
            buf.append((value & 0x7F) | 0x80)
            value >>= 7
        buf.append(value)

    def sint(self, value: int) -> None:
        """A signed varint, zigzag-mapped so small magnitudes of either sign stay short."""
        self.uint(value * 2 if value >= 0 else -value * 2 - 1)

    def flag(self, value: bool) -> None:
        self.buf.append(1 if value else 0)

    def f64(self, value: float) -> None:
        """A float, bit-exact (sums must restore to the same double)."""
        self.buf += _F64.pack(value)

    def raw(self, data: bytes | bytearray) -> None:
        """Bytes whose length the reader knows from earlier fields."""
        self.buf += data

    def blob(self, data: bytes | bytearray) -> None:
        self.uint(len(data))
        self.buf += data

    def text(self, value: str) -> None:
        self.blob(value.encode())

    def opt_text(self, value: str | None) -> None:
        """An optional string: a 0 length means None, so an empty string costs one byte more."""
        if value is None:
            self.uint(0)
        else:
            data = value.encode()
            self.uint(len(data) + 1)
            self.buf += data

    def ident(self, value: str | None) -> None:
        """An optional identifier, packed when it is a canonical UUID or lowercase hex.

        Event and trace ids are mostly UUIDs (36 chars) and W3C trace ids (32 hex chars);
        packed they take 17 bytes, which halves the evidence part of a route's state.
        """
        if value is None:
            self.buf.append(_ID_NONE)
            return
        if len(value) == 36 and value[8] == "-":
            try:
                packed = uuid.UUID(value)
            except ValueError:
                packed = None
            if packed is not None and str(packed) == value:
                self.buf.append(_ID_UUID)
                self.buf += packed.bytes
                return
        if value and len(value) % 2 == 0 and len(value) <= 512:
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raw = None
            if raw is not None and raw.hex() == value:
                self.buf.append(_ID_HEX)
                self.blob(raw)
                return
        self.buf.append(_ID_TEXT)
        self.text(value)

    def uints(self, values: Sequence[int]) -> None:
        """A length-prefixed run of varints; both sides run in C when all are < 128 (the usual case)."""
        self.uint(len(values))
        if not values or (min(values) >= 0 and max(values) < 0x80):
            self.blob(bytes(values))
            return
        sub = Writer()
        for value in values:
            sub.uint(value)
        self.blob(sub.buf)

    def packed(self, values: Sequence[int]) -> None:
        """Non-negative ints as a fixed-width little-endian array, width chosen from the largest."""
        self.uint(len(values))
        if not values:
            return
        top = max(values)
        width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
        self.buf.append(width)
        arr = array(_WIDTH_CODES[width], values)
        if arr.itemsize != width:  # pragma: no cover - platforms where I is not 4 bytes
            raise ValueError("unexpected array item size")
        self.buf += arr.tobytes() if _LITTLE else _swapped(arr)


_LITTLE: Final = struct.pack("=H", 1) == b"\x01\x00"


def _swapped(arr: array[int]) -> bytes:  # pragma: no cover - big-endian hosts only
    copy = array(arr.typecode, arr)
    copy.byteswap()
    return copy.tobytes()


class Reader:
    """Reads fields written by :class:`Writer`; any inconsistency raises :class:`CorruptState`."""

    __slots__ = ("_data", "_pos", "_what", "version")

    def __init__(self, data: bytes | memoryview, what: str = "state", version: int = FORMAT_VERSION) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._what = what
        self.version = version
        """The frame's format version, for readers of kinds whose layout changed."""

    def fail(self, problem: str) -> CorruptState:
        return CorruptState(f"{self._what}: {problem} (at byte {self._pos})")

    def uint(self) -> int:
        data = self._data
        pos = self._pos
        result = 0
        shift = 0
        while True:
            if pos >= len(data):
                raise self.fail("truncated varint")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 70:
                raise self.fail("varint too long")
        self._pos = pos
        return result

    def sint(self) -> int:
        value = self.uint()
        return value >> 1 if not value & 1 else -((value + 1) >> 1)

    def bounded(self, low: int, high: int, name: str) -> int:
        """A uint that must lie in [low, high]; guards sizes before anything is allocated."""
        value = self.uint()
        if not low <= value <= high:
            raise self.fail(f"{name} {value} outside [{low}, {high}]")
        return value

    def flag(self) -> bool:
        byte = self.raw(1)[0]
        if byte > 1:
            raise self.fail(f"flag byte {byte}")
        return byte == 1

    def f64(self) -> float:
        value: float = _F64.unpack(self.raw(8))[0]
        return value

    def raw(self, size: int) -> bytes:
        end = self._pos + size
        if size < 0 or end > len(self._data):
            raise self.fail(f"needs {size} more bytes, has {len(self._data) - self._pos}")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def blob(self) -> bytes:
        return self.raw(self.uint())

    def text(self) -> str:
        try:
            return self.blob().decode()
        except UnicodeDecodeError:
            raise self.fail("invalid UTF-8 text") from None

    def opt_text(self) -> str | None:
        size = self.uint()
        if size == 0:
            return None
        try:
            return self.raw(size - 1).decode()
        except UnicodeDecodeError:
            raise self.fail("invalid UTF-8 text") from None

    def ident(self) -> str | None:
        tag = self.raw(1)[0]
        if tag == _ID_NONE:
            return None
        if tag == _ID_UUID:
            return str(uuid.UUID(bytes=self.raw(16)))
        if tag == _ID_HEX:
            return self.blob().hex()
        if tag == _ID_TEXT:
            return self.text()
        raise self.fail(f"identifier tag {tag}")

    def uints(self) -> list[int]:
        count = self.uint()
        data = self.blob()
        if count > len(data):
            raise self.fail(f"{count} varints in {len(data)} bytes")
        if count == len(data) and (not data or max(data) < 0x80):
            return list(data)
        sub = Reader(data, self._what)
        values = [sub.uint() for _ in range(count)]
        sub.end()
        return values

    def packed(self) -> list[int]:
        count = self.uint()
        if count == 0:
            return []
        width = self.raw(1)[0]
        code = _WIDTH_CODES.get(width)
        if code is None:
            raise self.fail(f"packed width {width}")
        arr = array(code)
        arr.frombytes(self.raw(count * width))
        if not _LITTLE:  # pragma: no cover
            arr.byteswap()
        return arr.tolist()

    def mark(self) -> int:
        """The current position, to slice out what the next reads consume with :meth:`since`."""
        return self._pos

    def since(self, mark: int) -> bytes:
        return self._data[mark : self._pos]

    def end(self) -> None:
        """Assert every byte was consumed: trailing bytes mean a writer/reader mismatch."""
        if self._pos != len(self._data):
            raise self.fail(f"{len(self._data) - self._pos} unread trailing bytes")


def frame(kind: int, payload: bytes | bytearray, *, compress: bool = False) -> bytes:
    """Wrap a payload with magic, kind, version, flags and a CRC32 of all of it."""
    flags = 0
    body = bytes(payload)
    if compress:
        packed = zlib.compress(body, 6)
        if len(packed) < len(body):
            body = packed
            flags |= _FLAG_ZLIB
    head = MAGIC + bytes((kind, KIND_VERSIONS.get(kind, FORMAT_VERSION), flags))
    crc = zlib.crc32(body, zlib.crc32(head))
    return head + body + crc.to_bytes(4, "little")


def unframe(data: bytes | bytearray | memoryview, kind: int) -> Reader:
    """Check a frame and return a reader over its payload, or raise a :class:`StateError`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CorruptState(f"state must be bytes, got {type(data).__name__}")
    data = bytes(data)
    want = _KIND_NAMES.get(kind, str(kind))
    if len(data) < _HEADER + 4:
        raise CorruptState(f"{want}: {len(data)} bytes is too short to be state")
    if data[:2] != MAGIC:
        raise CorruptState(f"{want}: not rollwatch state bytes (bad magic {data[:2]!r})")
    got_kind, version, flags = data[2], data[3], data[4]
    newest = KIND_VERSIONS.get(got_kind, FORMAT_VERSION)  # the kind check comes after the CRC
    if not FORMAT_VERSION <= version <= newest:
        readable = f"version {newest}" if newest == FORMAT_VERSION else f"versions {FORMAT_VERSION}-{newest}"
        raise UnsupportedVersion(f"{want}: written in format version {version}, this code reads {readable}")
    if zlib.crc32(data[:-4]) != int.from_bytes(data[-4:], "little"):
        raise CorruptState(f"{want}: checksum mismatch (bytes altered or truncated)")
    if got_kind != kind:
        got = _KIND_NAMES.get(got_kind, f"kind {got_kind}")
        raise StateKindMismatch(f"expected {want} bytes, got {got} bytes")
    if flags & ~_FLAG_ZLIB:
        raise CorruptState(f"{want}: unknown flags {flags:#x}")
    body = data[_HEADER:-4]
    if flags & _FLAG_ZLIB:
        inflater = zlib.decompressobj()
        try:
            body = inflater.decompress(body, _MAX_INFLATED)
        except zlib.error as exc:
            raise CorruptState(f"{want}: bad compressed payload ({exc})") from None
        if inflater.unconsumed_tail or not inflater.eof:
            raise CorruptState(f"{want}: compressed payload truncated or too large")
    return Reader(body, want, version)
