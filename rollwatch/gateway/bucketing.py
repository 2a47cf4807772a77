"""Canary bucketing that any gateway recomputes with its language's standard library.

A gateway written in Go, Java or Node must put a user in the same arm as rollwatch's own
gateway, so the function is specified to the bit (docs/control-protocol.md, "Bucketing")
and pinned by ``schemas/vectors/bucketing.v1.json``. Hand-written on purpose: it is a few
lines over ``hashlib`` and its whole point is that it has no dependency to reproduce.

- ``sha256`` (the default): ``n`` = the first 8 bytes, big-endian unsigned, of
  SHA-256(UTF-8 ``"<workflow>:<unit id>"``); bucket = ``n mod 10000``. Salted by the
  workflow, so two workflows' canaries do not pick the same users.
- ``md5-seed``: the seed's ``md5(user_id) % 100 < percent``, unsalted, for gateways that
  already bucket that way: ``n`` = MD5(UTF-8 unit id) as a 128-bit big-endian unsigned
  integer; bucket = ``(n mod 100) × 100``.

In both, the unit is in the canary iff ``bucket < basis_points(percent)``, with
``basis_points(p) = floor(p × 100 + 0.5)`` computed once in IEEE-754 binary64 (the same
in every language) and clamped to ``[0, 10000]``; everything after is integer arithmetic.
"""

from __future__ import annotations

import hashlib
import math
from typing import Final, Literal, get_args

__all__ = ["BUCKETS", "DEFAULT_BUCKETING", "Bucketing", "basis_points", "bucket", "in_canary"]

BUCKETS: Final = 10_000
"""Canary resolution: 0.01% of users."""

Bucketing = Literal["sha256", "md5-seed"]
DEFAULT_BUCKETING: Final[Bucketing] = "sha256"
SCHEMES: Final[tuple[str, ...]] = get_args(Bucketing)


def basis_points(percent: float) -> int:
    """``percent`` in hundredths of a percent, rounded half up, clamped to ``[0, BUCKETS]``."""
    if not math.isfinite(percent):
        return 0 if percent != math.inf else BUCKETS
    return min(max(math.floor(percent * 100 + 0.5), 0), BUCKETS)


def bucket(workflow: str, unit_id: str, scheme: Bucketing = DEFAULT_BUCKETING) -> int:
    """The unit's stable bucket in ``[0, BUCKETS)`` under ``scheme``."""
    if scheme == "sha256":
        digest = hashlib.sha256(f"{workflow}:{unit_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % BUCKETS
    if scheme == "md5-seed":
        return int.from_bytes(hashlib.md5(unit_id.encode(), usedforsecurity=False).digest(), "big") % 100 * 100
    raise ValueError(f"unknown bucketing scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def in_canary(workflow: str, unit_id: str, percent: float, scheme: Bucketing = DEFAULT_BUCKETING) -> bool:
    """Whether the unit is on the canary (green) at ``percent``: raising the percent only adds units."""
    return bucket(workflow, unit_id, scheme) < basis_points(percent)
