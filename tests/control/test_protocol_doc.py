"""docs/control-protocol.md: its JSON examples are real documents and its worked numbers hold.

Every ```json block preceded by ``<!-- example: <schema file> -->`` must parse, validate
against that schema in ``schemas/``, and, when signed, verify with the published vector
key (the examples are the signing vectors' documents). A block without the marker fails
the test, so an unchecked example cannot slip in.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from rollwatch.gateway.bucketing import bucket, in_canary
from rollwatch.trust import Keyring, TrustedKey, parse_verify_key, verify_document
from tests.conftest import schema_validator

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "control-protocol.md"
BLOCK = re.compile(r"(<!-- example: (?P<schema>[\w.-]+) -->\n)?```json\n(?P<body>.*?)\n```", re.S)
KINDS: dict[str, Literal["commands", "tickets", "flags"]] = {
    "rollback-command.v1.json": "commands",
    "release-envelope.v1.json": "tickets",
    "flags-document.v1.json": "flags",
}


def _examples() -> list[tuple[str | None, dict[str, Any]]]:
    return [(m["schema"], json.loads(m["body"])) for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


def _vector_keyring() -> Keyring:
    vectors = json.loads((ROOT / "schemas" / "vectors" / "signing.v1.json").read_text(encoding="utf-8"))
    public = parse_verify_key("ed25519:" + vectors["keys"]["ed25519"]["public_key_base64"])
    return Keyring([TrustedKey("vector-ed25519", "vector", public, frozenset({"commands", "tickets", "flags"}))])


def test_every_json_example_names_its_schema_validates_and_verifies() -> None:
    examples = _examples()
    assert {schema for schema, _ in examples} >= {*KINDS, "control-ack.v1.json"}
    keyring = _vector_keyring()
    for schema, document in examples:
        assert schema is not None, f"an example without <!-- example: schema -->: {document}"
        schema_validator(schema).validate(document)
        if schema in KINDS:
            assert verify_document(document, keyring, KINDS[schema]).principal == "vector"


def test_the_worked_bucketing_examples() -> None:
    text = DOC.read_text(encoding="utf-8")
    digest = hashlib.sha256(b"support-summary:user-1").digest()
    assert f"SHA-256 starts `{digest[:8].hex()}`" in text
    assert f"`n = {int.from_bytes(digest[:8], 'big')}`" in text
    assert bucket("support-summary", "user-1") == 4389 and "bucket 4389" in text
    assert in_canary("support-summary", "user-1", 43.9) and not in_canary("support-summary", "user-1", 43.89)
    assert f"MD5 is\n`{hashlib.md5(b'user-1').hexdigest()}`" in text
    assert bucket("any", "user-1", "md5-seed") == 2000 and "bucket 2000" in text
    assert in_canary("x", "user-1", 20.01, "md5-seed") and not in_canary("x", "user-1", 20, "md5-seed")


def test_the_readme_links_the_protocol() -> None:
    assert "(docs/control-protocol.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
