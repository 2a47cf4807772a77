"""The signing test vectors in ``schemas/vectors/signing.v1.json`` hold for the Python side.

The vectors are what a gateway author in another language checks an implementation
against: documents, their RFC 8785 bytes, two keys and the HMAC-SHA256 and Ed25519
signatures. This test recomputes every byte from the documents and keys and compares;
``python -m tests.control.test_vectors`` rewrites the file (only for a deliberate change
of the vectors, never of the scheme).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from rollwatch.trust import (
    Keyring,
    TrustedKey,
    canonical_bytes,
    parse_signing_key,
    parse_verify_key,
    public_of,
    sign_document,
    signature_for,
    verify_document,
)
from rollwatch.trust.keys import ED

VECTORS = Path(__file__).resolve().parents[2] / "schemas" / "vectors" / "signing.v1.json"
HMAC_SECRET = "rollwatch-test-vector-secret (not a real key)"
ED_SEED = hashlib.sha256(b"rollwatch signing vectors v1 (not a real key)").digest()

DOCUMENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "rollback command",
        {
            "command_id": "cmd-0b1c2d3e4f5a6b7c",
            "issued_at": "2026-12-06T10:15:30.123456Z",
            "workflow": "support-summary",
            "segment": None,
            "action": "restore_route_and_prompt",
            "flags": {
                "ai.route.provider": "support-summary/stable",
                "ai.prompt.version": "support-summary-v14",
                "ai.rollout.percent": 1.0,
            },
            "reason": {
                "gate": "json-failures",
                "metric": "schema_failure_rate",
                "observed": 0.041,
                "threshold": 0.01,
                "control": 0.0,
                "window": "last 200 calls",
                "samples": {"candidate": 200, "control": 3800},
                "detail": None,
            },
            "evidence": {"trace_ids": ["4bf92f3577b34da6a3ce929d0e0e4736"], "event_ids": ["e-1"], "attachments": None},
            "issued_by": "rollwatch-worker",
            "ticket": {"id": "REL-2041", "revision": 3},
            "customer_message": {
                "key": "known_issue",
                "text": "We found an issue affecting AI-generated summaries and are restoring the prior behavior.",
            },
            "expires_at": "2026-12-06T11:15:30.123456Z",
        },
    ),
    (
        "numbers",
        {"tiny": 1e-7, "huge": 1e21, "tenth": 0.1, "whole": 5.0, "negative_zero": -0.0, "big": 1.2345678901234568e20,
         "int": 9007199254740991, "neg": -12.5, "third": 1 / 3},
    ),
    (
        "strings and key order",
        {"\u20ac": "euro", "\r": "carriage return", "\u00f6": "o umlaut", "1": "digit", "\U0001f600": "emoji",
         "b": "control \u0001 and \n and \" and \\ and \u2028", "a": [True, False, None, {}, []]},
    ),
    (
        "release envelope",
        {
            "format": "rollwatch.release/v1",
            "workflow": "support-summary",
            "ticket": "REL-2041",
            "revision": 3,
            "published_at": "2026-12-06T09:00:00Z",
            "published_by": "release-bot",
            "media_type": "application/yaml",
            "text": "format: rollwatch.release-ticket/v1\nticket: REL-2041\nrevision: 3\n",
        },
    ),
    (
        "flags document",
        {
            "format": "rollwatch.flags/v1",
            "workflow": "support-summary",
            "flags": {"ai.route.provider": "support-summary/stable", "ai.rollout.percent": 0.0},
            "segments": {"enterprise": {"ai.action.mode": "draft"}},
            "version": 2,
            "partition": 1,
            "offset": 41,
            "last_command_id": "cmd-0b1c2d3e4f5a6b7c",
            "updated_at": "2026-12-06T10:15:30.200000Z",
            "applied": ["cmd-1", "cmd-0b1c2d3e4f5a6b7c"],
            "in_force": {
                "flags": {"ai.route.provider": "support-summary/stable", "ai.route.mode": "sync",
                          "ai.prompt.version": "support-summary-v14", "ai.tools.enabled": True,
                          "ai.action.mode": "auto", "ai.rollout.percent": 0.0},
                "segments": {"enterprise": {"ai.route.provider": "support-summary/stable", "ai.route.mode": "sync",
                                            "ai.prompt.version": "support-summary-v14", "ai.tools.enabled": True,
                                            "ai.action.mode": "draft", "ai.rollout.percent": 0.0}},
            },
            "ticket": {"ticket": "REL-2041", "revision": 3, "bucketing": "sha256"},
        },
    ),
]  # fmt: skip


def _keys() -> dict[str, Any]:
    ed_private = ED + base64.b64encode(ED_SEED).decode()
    ed_public = public_of(parse_signing_key("vector-ed25519", ed_private))
    return {
        "hmac-sha256": {"key_id": "vector-hmac", "secret": HMAC_SECRET},
        "ed25519": {
            "key_id": "vector-ed25519",
            "seed_base64": base64.b64encode(ED_SEED).decode(),
            "public_key_base64": base64.b64encode(ed_public.material).decode(),
        },
    }


def build() -> dict[str, Any]:
    keys = _keys()
    hmac_key = parse_signing_key("vector-hmac", "hmac-sha256:" + HMAC_SECRET, "vector")
    ed_key = parse_signing_key("vector-ed25519", ED + keys["ed25519"]["seed_base64"], "vector")
    cases = []
    for name, document in DOCUMENTS:
        cases.append(
            {
                "name": name,
                "document": document,
                "canonical": canonical_bytes(document).decode("utf-8"),
                "signatures": {
                    "hmac-sha256": signature_for(document, hmac_key)["value"],
                    "ed25519": signature_for(document, ed_key)["value"],
                },
                "signed": sign_document(document, ed_key),
            }
        )
    return {
        "format": "rollwatch.signing-vectors/v1",
        "description": (
            "signature.value = base64(HMAC-SHA256(key = UTF-8 bytes of the secret) or Ed25519 (RFC 8032) over "
            "the RFC 8785 canonical bytes of the document without its 'signature' member). "
            "The keys are published test keys: never use them for anything else."
        ),
        "keys": keys,
        "cases": cases,
    }


def test_the_vectors_file_is_what_the_python_side_computes() -> None:
    on_disk = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert on_disk == build()


def test_every_signed_vector_verifies_and_a_changed_one_does_not() -> None:
    on_disk = json.loads(VECTORS.read_text(encoding="utf-8"))
    public = "ed25519:" + on_disk["keys"]["ed25519"]["public_key_base64"]
    keyring = Keyring([TrustedKey("vector-ed25519", "vector", parse_verify_key(public), frozenset({"flags"}))])
    for case in on_disk["cases"]:
        assert canonical_bytes(case["document"]) == case["canonical"].encode("utf-8"), case["name"]
        assert verify_document(case["signed"], keyring, "flags").principal == "vector"
        changed = dict(case["signed"]) | {"x-added": 1}
        try:
            verify_document(changed, keyring, "flags")
        except Exception as exc:
            assert getattr(exc, "problem", None) == "bad_signature"
        else:
            raise AssertionError(f"{case['name']}: a changed document verified")


def test_canonical_form_details_other_languages_trip_on() -> None:
    numbers = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"][1]["canonical"]
    assert '"tiny":1e-7' in numbers and '"huge":1e+21' in numbers and '"whole":5' in numbers
    assert '"negative_zero":0' in numbers and '"third":0.3333333333333333' in numbers


if __name__ == "__main__":
    VECTORS.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    sys.stdout.write(f"wrote {VECTORS}\n")
