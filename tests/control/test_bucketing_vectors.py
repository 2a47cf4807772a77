"""The bucketing vectors in ``schemas/vectors/bucketing.v1.json`` hold, computed two ways.

A Go, Java or Node gateway checks its canary split against these vectors. The expected
buckets here are recomputed from the written rule (docs/control-protocol.md) with
``struct``/``hashlib`` and, for ``md5-seed``, literally as the seed wrote it
(``int(md5(user_id).hexdigest(), 16) % 100 < percent``), not by calling
:mod:`rollwatch.gateway.bucketing`; the module is then checked against them.
``python -m tests.control.test_bucketing_vectors`` rewrites the file (only for a deliberate
change of the cases, never of the scheme).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from rollwatch.gateway.bucketing import basis_points, bucket, in_canary
from rollwatch.tickets.model import Canary

VECTORS = Path(__file__).resolve().parents[2] / "schemas" / "vectors" / "bucketing.v1.json"

WORKFLOWS = ("support-summary", "refund-triage")
UNIT_IDS = (
    *(f"user-{i}" for i in range(24)),
    "",
    "42",
    "alice@example.com",
    "Zoë",
    "用户-7",
    "a:b:c",
    "00000000-0000-4000-8000-000000000000",
    "x" * 200,
)
PERCENTS: tuple[float, ...] = (0, 0.005, 0.01, 0.015, 1, 5, 12.345, 25, 33.33, 50, 62.5, 99.99, 99.995, 100)


def _basis_points(percent: float) -> int:
    # floor(p * 100 + 0.5) in binary64, clamped: the written rule, independently.
    raw = int(percent * 100 + 0.5)
    return max(0, min(10_000, raw))


def _expected_bucket(scheme: str, workflow: str, unit_id: str) -> int:
    if scheme == "sha256":
        (n,) = struct.unpack(">Q", hashlib.sha256(f"{workflow}:{unit_id}".encode()).digest()[:8])
        return int(n) % 10_000
    return int(hashlib.md5(unit_id.encode()).hexdigest(), 16) % 100 * 100


def build() -> dict[str, Any]:
    cases = [
        {
            "scheme": scheme,
            "workflow": workflow,
            "unit_id": unit_id,
            "bucket": (b := _expected_bucket(scheme, workflow, unit_id)),
            "in_canary": [b < _basis_points(p) for p in PERCENTS],
        }
        for scheme in ("sha256", "md5-seed")
        for workflow in WORKFLOWS
        for unit_id in UNIT_IDS
    ]
    return {
        "format": "rollwatch.bucketing-vectors/v1",
        "description": (
            "in_canary[i] is the decision at percents[i].percent. sha256: bucket = (first 8 bytes of "
            "SHA-256(UTF-8 '<workflow>:<unit_id>') as a big-endian unsigned 64-bit integer) mod 10000. "
            "md5-seed: bucket = (MD5(UTF-8 unit_id) as a big-endian unsigned 128-bit integer mod 100) * 100; "
            "the workflow is not used. In canary iff bucket < basis_points, basis_points = "
            "floor(percent * 100 + 0.5) in IEEE-754 binary64, clamped to [0, 10000]."
        ),
        "percents": [{"percent": p, "basis_points": _basis_points(p)} for p in PERCENTS],
        "cases": cases,
    }


def _vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return data


def test_the_vectors_file_is_the_written_rule() -> None:
    assert _vectors() == build()


def test_the_module_reproduces_every_vector() -> None:
    vectors = _vectors()
    for entry in vectors["percents"]:
        assert basis_points(entry["percent"]) == entry["basis_points"], entry
    checked = 0
    for case in vectors["cases"]:
        assert bucket(case["workflow"], case["unit_id"], case["scheme"]) == case["bucket"], case
        for entry, expected in zip(vectors["percents"], case["in_canary"], strict=True):
            assert in_canary(case["workflow"], case["unit_id"], entry["percent"], case["scheme"]) is expected
            checked += 1
    assert checked == 2 * len(WORKFLOWS) * len(UNIT_IDS) * len(PERCENTS)


def test_md5_seed_is_the_seeds_formula_at_whole_percents() -> None:
    for i in range(2_000):
        user = f"u{i}"
        for percent in (1, 10, 25, 50, 99):
            assert in_canary("any", user, percent, "md5-seed") is (
                int(hashlib.md5(user.encode()).hexdigest(), 16) % 100 < percent
            )


def test_rounding_is_half_up_not_half_even() -> None:
    # Python's round() would give 0 and 2 here; the protocol says 1 and 3 (hundredths of a percent).
    assert basis_points(0.005) == 1
    assert basis_points(0.025) == 3
    assert basis_points(12.345) == 1235  # 1234.4999... + 0.5 in binary64
    assert basis_points(-5) == 0
    assert basis_points(250) == 10_000


def test_sha256_split_is_salted_by_workflow_and_close_to_the_percent() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    a = {u for u in users if in_canary("support-summary", u, 25)}
    b = {u for u in users if in_canary("refund-triage", u, 25)}
    assert 0.23 < len(a) / len(users) < 0.27
    assert len(a & b) / len(a) < 0.35  # independent salts overlap about 25%, not 100%
    assert {u for u in users if in_canary("support-summary", u, 10)} <= a  # growing only adds users


def test_the_ticket_selects_the_scheme_and_defaults_to_sha256() -> None:
    assert Canary.model_fields["bucketing"].default == "sha256"
    with pytest.raises(ValueError, match="unknown bucketing scheme"):
        bucket("w", "u", "crc32")  # type: ignore[arg-type]


if __name__ == "__main__":
    VECTORS.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    sys.stdout.write(f"wrote {VECTORS}\n")
