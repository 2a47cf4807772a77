"""Flags in Redis: one hash per workflow, for applications that read flags without Kafka.

The hash holds what is *in force*, not the layers: field ``ai.route.provider`` is the
workflow-wide value (the ticket's state overlaid by commands) and
``segment:<name>:ai.route.provider`` the value a segment sees. Values are JSON so a
boolean stays a boolean and ``5.0`` a number. ``_meta`` says which command produced the
state. The hash is replaced in one MULTI/EXEC so a reader never sees half a rollback.

``_document`` holds the workflow's signed flags document, the same bytes the flag store
writes to the flags topic. The plain fields are for readers that trust Redis; the
document is what lets the flag store itself trust Redis again after the broker lost the
flags topic (:mod:`rollwatch.flagstore.reconcile`): it takes a copy back only when the
signature verifies, so whoever can write Redis cannot set flags through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from redis.asyncio import Redis

from rollwatch.control.state import FlagMap, FlagValue, WorkflowFlags

__all__ = ["DOCUMENT_FIELD", "RedisFlags", "hash_fields", "parse_fields"]

_SEGMENT = "segment:"
_META = "_meta"
DOCUMENT_FIELD = "_document"


def hash_fields(
    state: WorkflowFlags, base: Mapping[str, FlagValue] | None, document: bytes | None = None
) -> dict[str, bytes]:
    """The fields of a workflow's hash (``document``: the signed flags document, kept beside them)."""
    fields = {name: orjson.dumps(value) for name, value in state.effective(None, base).items()}
    for segment in sorted(state.segments):
        for name, value in state.effective(segment, base).items():
            fields[f"{_SEGMENT}{segment}:{name}"] = orjson.dumps(value)
    meta = {"version": state.version, "last_command_id": state.last_command_id, "updated_at": state.updated_at}
    fields[_META] = orjson.dumps(meta)
    if document is not None:
        fields[DOCUMENT_FIELD] = document
    return fields


def parse_fields(raw: Mapping[bytes, bytes]) -> dict[str, Any]:
    """A hash read back: ``{"flags": {...}, "segments": {name: {...}}, "meta": {...}}``."""
    flags: FlagMap = {}
    segments: dict[str, FlagMap] = {}
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode()
        if name == DOCUMENT_FIELD:
            continue
        if name == _META:
            meta = orjson.loads(value)
        elif name.startswith(_SEGMENT):
            segment, flag = name[len(_SEGMENT) :].rsplit(":", 1)
            segments.setdefault(segment, {})[flag] = orjson.loads(value)
        else:
            flags[name] = orjson.loads(value)
    return {"flags": flags, "segments": segments, "meta": meta}


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis SCAN pattern (a prefix may hold ``*``, ``?`` or ``[``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class RedisFlags:
    """Writes and reads the per-workflow hashes under ``prefix``."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def key(self, workflow: str) -> str:
        return f"{self.prefix}flags:{workflow}"

    async def write(
        self, state: WorkflowFlags, base: Mapping[str, FlagValue] | None, document: bytes | None = None
    ) -> None:
        key = self.key(state.workflow)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=hash_fields(state, base, document))  # type: ignore[arg-type]
            await pipe.execute()

    async def documents(self) -> dict[str, bytes | None]:
        """Every workflow hash under the prefix and its signed document (None: the hash has none)."""
        head = f"{self.prefix}flags:"
        out: dict[str, bytes | None] = {}
        async for key in self.client.scan_iter(match=_glob_escape(head) + "*", count=500):
            name = _b(key)[len(head.encode()) :].decode("utf-8", "replace")
            document = await self.client.hget(key, DOCUMENT_FIELD)
            out[name] = _b(document) if document is not None else None
        return out

    async def delete(self, workflow: str) -> None:
        await self.client.delete(self.key(workflow))

    async def read(self, workflow: str) -> dict[str, Any]:
        raw = await self.client.hgetall(self.key(workflow))
        return parse_fields({_b(k): _b(v) for k, v in raw.items()})

    async def close(self) -> None:
        await self.client.aclose()
