"""The flag store over HTTP: flags in force as JSON, the audit trail, and /metrics.

Read-only on purpose: changing flags goes through signed commands on the control
topic, never through an HTTP call that would bypass authority and the audit.

- ``GET /flags`` -> ``{"workflows": {workflow: {"flags": {...}, "segments": {name: {...}}}}}``
- ``GET /flags/{workflow}[?segment=S]`` -> the flags a request in that scope sees, with the layers
- ``GET /audit[?workflow=W&command_id=C&limit=N]`` -> audit records, newest first
- ``GET /metrics`` (Prometheus), ``GET /healthz`` (with what the last start took back from Redis)
- ``POST /ofrep/v1/evaluate/flags[/{key}]``: OpenFeature Remote Evaluation (:mod:`rollwatch.flagstore.ofrep`)
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rollwatch.flagstore.ofrep import add_ofrep_routes
from rollwatch.flagstore.service import FlagStore

__all__ = ["make_app", "serve"]

_STORE: web.AppKey[FlagStore] = web.AppKey("store", FlagStore)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _workflow_view(store: FlagStore, workflow: str) -> dict[str, Any]:
    state = store.book.get(workflow)
    segments = sorted(state.segments) if state else []
    return {
        "flags": store.effective(workflow) or {},
        "segments": {name: store.effective(workflow, name) or {} for name in segments},
    }


def _refusal(store: FlagStore, workflow: str) -> dict[str, str] | None:
    """The last releases record refused for ``workflow`` (the ticket in force is the one before it)."""
    refusal = store.tickets.refusals.get(workflow)
    if refusal is None:
        return None
    return {"code": refusal.code, "detail": refusal.detail, "source": refusal.source}


async def _all_flags(request: web.Request) -> web.Response:
    store = request.app[_STORE]
    return _json({"workflows": {w: _workflow_view(store, w) for w in store.known_workflows()}})


async def _one_workflow(request: web.Request) -> web.Response:
    store = request.app[_STORE]
    workflow = request.match_info["workflow"]
    segment = request.query.get("segment") or None
    flags = store.effective(workflow, segment)
    if flags is None:
        return _json({"error": f"no flags and no ticket for workflow {workflow!r}"}, status=404)
    ticket = store.tickets.get(workflow)
    return _json(
        {
            "workflow": workflow,
            "segment": segment,
            "flags": flags,
            "ticket": {"id": ticket.ticket, "revision": ticket.revision} if ticket else None,
            "base": store.base(workflow),
            "layers": store.signed_layers(workflow),
            "ticket_refused": _refusal(store, workflow),
        }
    )


async def _audit(request: web.Request) -> web.Response:
    store = request.app[_STORE]
    try:
        limit = max(1, min(int(request.query.get("limit", "100")), 10_000))
    except ValueError:
        return _json({"error": "limit must be a whole number"}, status=400)
    records = store.audit.query(request.query.get("workflow"), request.query.get("command_id"), limit)
    return _json({"records": [r.to_dict() for r in records]})


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[_STORE].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _health(request: web.Request) -> web.Response:
    store = request.app[_STORE]
    reconciled = store.reconciliation.to_dict()
    return _json({"status": "ok", "workflows": len(store.known_workflows()), "redis_reconciliation": reconciled})


def make_app(store: FlagStore) -> web.Application:
    app = web.Application()
    app[_STORE] = store
    app.router.add_get("/flags", _all_flags)
    app.router.add_get("/flags/{workflow}", _one_workflow)
    app.router.add_get("/audit", _audit)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _health)
    add_ofrep_routes(app, store)
    return app


async def serve(store: FlagStore, host: str, port: int) -> web.AppRunner:
    """Start serving; the caller cleans up with ``await runner.cleanup()``."""
    runner = web.AppRunner(make_app(store), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
