"""The value the worker keeps per workflow in its state table: engine bytes plus source offsets.

Offsets are committed after the checkpoint is written (see :mod:`rollwatch.agents.app`),
so after a crash the restored state can be *ahead* of the committed offsets, and the
messages in between are delivered again. Each checkpoint therefore records, per
telemetry partition, the highest offset already folded into the engine; on replay the
worker skips those messages for that workflow instead of counting them twice. This
gives exactly-once effect on state without Kafka transactions (which Tansu lacks).

Layout (big-endian, no pickle)::

    b"RWC1" | home partition i32 | n u16 | n x (partition i32, offset i64) | engine bytes
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from rollwatch.agents.errors import CheckpointError

__all__ = ["MAGIC", "Checkpoint", "decode_checkpoint", "encode_checkpoint"]

MAGIC: Final = b"RWC1"
_HEAD: Final = struct.Struct(">4siH")
_PAIR: Final = struct.Struct(">iq")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One workflow's persisted state and where in the telemetry log it stands."""

    home: int
    """The telemetry (and changelog) partition this workflow lives on."""
    applied: dict[int, int]
    """Telemetry partition -> highest offset whose events are in ``engine``."""
    engine: bytes


def encode_checkpoint(home: int, applied: Mapping[int, int], engine: bytes) -> bytes:
    parts = [_HEAD.pack(MAGIC, home, len(applied))]
    parts.extend(_PAIR.pack(p, o) for p, o in sorted(applied.items()))
    parts.append(engine)
    return b"".join(parts)


def decode_checkpoint(data: bytes) -> Checkpoint:
    if len(data) < _HEAD.size:
        raise CheckpointError(f"checkpoint of {len(data)} bytes is shorter than its header")
    magic, home, count = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError(f"checkpoint starts with {magic!r}, expected {MAGIC!r}")
    end = _HEAD.size + count * _PAIR.size
    if len(data) < end:
        raise CheckpointError(f"checkpoint announces {count} offsets but holds {len(data) - _HEAD.size} bytes")
    applied = dict(_PAIR.iter_unpack(data[_HEAD.size : end]))
    return Checkpoint(home, applied, data[end:])
