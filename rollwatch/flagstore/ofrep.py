"""OFREP (OpenFeature Remote Evaluation Protocol) on the flag store.

Every language's OpenFeature SDK has a stock OFREP provider, so serving OFREP lets a Go,
Java or Node application read rollwatch's flags without a rollwatch library. Hand-written
on aiohttp because there is no server-side OFREP package to build on; it is two routes
over the flag store's state.

- ``POST /ofrep/v1/evaluate/flags/{key}`` evaluates one flag; ``POST /ofrep/v1/evaluate/flags``
  evaluates all of them and answers ``304`` when ``If-None-Match`` carries the current ``ETag``.
- Context: ``workflow`` (required), ``segment`` (optional), ``targetingKey`` (needed only by
  ``ai.rollout.canary``, whether the unit is on the canary by the ticket's bucketing).
- ``reason`` says where the value came from, within the values OpenFeature defines (stock
  providers reject others): ``TARGETING_MATCH`` when a command (a rollback, a promotion, a
  segment setting) set it for this scope, ``DEFAULT`` when it is the release ticket's own
  state, ``SPLIT`` for ``ai.rollout.canary``.
- ``variant`` is the value's JSON text; ``metadata`` names the layer (``segment``,
  ``workflow``, ``ticket``), the last command applied (``commandId``), the ticket and its
  revision, and the flags document version.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson
from aiohttp import web

from rollwatch.commands import FLAG_NAMES
from rollwatch.flagstore.service import FlagStore
from rollwatch.gateway.bucketing import in_canary

__all__ = ["CANARY_FLAG", "add_ofrep_routes", "evaluate"]

CANARY_FLAG: Final = "ai.rollout.canary"
_STORE: web.AppKey[FlagStore] = web.AppKey("ofrep_store", FlagStore)


class _BadContext(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _context(body: Any) -> tuple[str, str | None, str | None]:
    context = body.get("context") if isinstance(body, dict) else None
    if not isinstance(context, dict):
        raise _BadContext("INVALID_CONTEXT", "the request body needs a JSON object 'context'")
    workflow, segment, key = context.get("workflow"), context.get("segment"), context.get("targetingKey")
    if not isinstance(workflow, str) or not workflow:
        raise _BadContext("INVALID_CONTEXT", "context.workflow (the rollwatch workflow) is required")
    if segment is not None and not isinstance(segment, str):
        raise _BadContext("INVALID_CONTEXT", "context.segment must be a string")
    if key is not None and not isinstance(key, str):
        raise _BadContext("INVALID_CONTEXT", "context.targetingKey must be a string")
    return workflow, segment or None, key or None


def _metadata(store: FlagStore, workflow: str, layer: str) -> dict[str, str | int | bool | float]:
    meta: dict[str, str | int | bool | float] = {"workflow": workflow, "layer": layer}
    state = store.book.get(workflow)
    if state is not None:
        meta["flagsVersion"] = state.version
        if state.last_command_id is not None:
            meta["commandId"] = state.last_command_id
    ticket = store.tickets.get(workflow)
    if ticket is not None:
        meta["ticket"] = ticket.ticket
        meta["ticketRevision"] = ticket.revision
    return meta


def evaluate(
    store: FlagStore, key: str, workflow: str, segment: str | None, targeting_key: str | None
) -> tuple[int, dict[str, Any]]:
    """One OFREP evaluation: ``(HTTP status, body)``."""
    flags = store.effective(workflow, segment)
    if flags is None or (key not in FLAG_NAMES and key != CANARY_FLAG):
        detail = f"no flags for workflow {workflow!r}" if flags is None else f"unknown flag {key!r}"
        return 404, {"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": detail}
    if key == CANARY_FLAG:
        if targeting_key is None:
            return 400, {"key": key, "errorCode": "TARGETING_KEY_MISSING", "errorDetails": "context.targetingKey"}
        ticket = store.tickets.get(workflow)
        scheme = ticket.canary.bucketing if ticket is not None else "sha256"
        percent = flags.get("ai.rollout.percent", 0.0)
        number = float(percent) if isinstance(percent, int | float) and not isinstance(percent, bool) else 0.0
        value: Any = in_canary(workflow, targeting_key, number, scheme)
        meta = _metadata(store, workflow, "computed") | {"bucketing": scheme, "percent": number}
        return 200, {"key": key, "value": value, "reason": "SPLIT", "variant": orjson.dumps(value).decode(),
                     "metadata": meta}  # fmt: skip
    if key not in flags:
        return 404, {"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": f"{key} is not set for {workflow!r}"}
    state = store.book.get(workflow)
    if state is not None and segment is not None and key in state.segments.get(segment, {}):
        layer, reason = "segment", "TARGETING_MATCH"
    elif state is not None and key in state.flags:
        layer, reason = "workflow", "TARGETING_MATCH"
    else:
        layer, reason = "ticket", "DEFAULT"
    value = flags[key]
    meta = _metadata(store, workflow, layer)
    if segment is not None:
        meta["segment"] = segment
    return 200, {
        "key": key,
        "value": value,
        "reason": reason,
        "variant": orjson.dumps(value).decode(),
        "metadata": meta,
    }


async def _body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise _BadContext("PARSE_ERROR", f"the body is not JSON: {exc}") from None


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


async def _single(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    try:
        workflow, segment, targeting_key = _context(await _body(request))
    except _BadContext as exc:
        return _json({"key": key, "errorCode": exc.code, "errorDetails": exc.detail}, status=400)
    status, body = evaluate(request.app[_STORE], key, workflow, segment, targeting_key)
    return _json(body, status=status)


async def _bulk(request: web.Request) -> web.Response:
    try:
        workflow, segment, targeting_key = _context(await _body(request))
    except _BadContext as exc:
        return _json({"errorCode": exc.code, "errorDetails": exc.detail}, status=400)
    store = request.app[_STORE]
    if store.effective(workflow, segment) is None:
        return _json({"errorCode": "FLAG_NOT_FOUND", "errorDetails": f"no flags for workflow {workflow!r}"}, 404)
    flags = [evaluate(store, key, workflow, segment, targeting_key)[1] for key in (*FLAG_NAMES, CANARY_FLAG)]
    body = orjson.dumps({"flags": flags})
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=body, content_type="application/json", headers={"ETag": etag})


def add_ofrep_routes(app: web.Application, store: FlagStore) -> None:
    """Mount the OFREP endpoints on the flag store's HTTP app."""
    app[_STORE] = store
    app.router.add_post("/ofrep/v1/evaluate/flags/{key}", _single)
    app.router.add_post("/ofrep/v1/evaluate/flags", _bulk)
