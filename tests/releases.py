"""Signed releases-topic records for tests: consumers refuse unsigned tickets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import yaml

from rollwatch.settings import Settings
from rollwatch.trust import signing_key_from_settings
from rollwatch.trust.releases import release_record

__all__ = ["signed_release"]


def signed_release(settings: Settings, workflow: str, raw: bytes) -> bytes:
    """``raw`` (a ticket file, real or the fake engine's) in an envelope signed with the settings' key.

    The envelope's ticket id and revision come from the file when it has them (``ticket``
    or ``id``, ``revision``), so a file that does not parse is still published, signed, for
    tests of what a consumer does with a signed ticket it cannot load.
    """
    key = signing_key_from_settings(settings)
    assert key is not None, "the test settings carry no signing key"
    try:  # JSON is YAML, but PyYAML parses a JSON ticket ~100x slower than orjson (10,000 in the load test)
        doc: Any = orjson.loads(raw) if raw.lstrip()[:1] == b"{" else yaml.safe_load(raw)
    except (yaml.YAMLError, orjson.JSONDecodeError):
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    ticket_id = str(doc.get("ticket") or doc.get("id") or "unknown")
    revision = doc.get("revision") if type(doc.get("revision")) is int and doc["revision"] >= 0 else 0
    media = "application/json" if raw.lstrip()[:1] == b"{" else "application/yaml"
    return release_record(raw, workflow, ticket_id, revision, key, datetime.now(UTC), media)
