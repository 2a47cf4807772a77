"""Dead-letter records: one JSON document per rejected item, enough to find and replay it.

The original bytes go in as text when they are UTF-8 (the usual case: bad JSON is still
text) and base64 otherwise, with ``raw_encoding`` saying which, so a reader never has to
guess. They are cut at :data:`MAX_RAW` bytes: a dead letter must always fit in a produce
request, or one oversized poison message would stop the worker.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from rollwatch.agents.records import Outgoing, SourceRecord
from rollwatch.commands import rfc3339

__all__ = ["MAX_RAW", "dead_letter", "raw_field"]

MAX_RAW: Final = 256 * 1024


def raw_field(raw: bytes | None) -> dict[str, Any]:
    """The ``raw*`` fields of a dead letter for these bytes."""
    if raw is None:
        return {"raw": None, "raw_encoding": None, "raw_size": 0, "raw_truncated": False}
    cut = raw[:MAX_RAW]
    try:
        text, encoding = cut.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(cut).decode("ascii"), "base64"
    return {"raw": text, "raw_encoding": encoding, "raw_size": len(raw), "raw_truncated": len(cut) < len(raw)}


def dead_letter(
    topic: str,
    source: SourceRecord,
    *,
    reason: str,
    field: str | None,
    index: int | None,
    raw: bytes | None,
) -> Outgoing:
    """The dead-letter message for one rejected item of ``source``, keyed like the source."""
    doc: dict[str, Any] = {
        "reason": reason,
        "field": field or None,
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "index": index,
        },
        **raw_field(raw),
        "at": rfc3339(datetime.now(UTC)),
    }
    return Outgoing(topic, source.key, orjson.dumps(doc))
