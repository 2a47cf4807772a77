"""A local webhook receiver for the notification tests (a real aiohttp server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from rollwatch.broker import free_port

__all__ = ["Hook", "hook_server"]


@dataclass
class Hook:
    """Answers ``failures`` 503s first (or ``status`` forever), then 200; keeps every body by path."""

    failures: int = 0
    status: int = 200
    delay_s: float = 0.0
    attempts: int = 0
    bodies: dict[str, list[Any]] = field(default_factory=dict)
    base: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=503)
        if self.status >= 300:
            return web.Response(status=self.status)
        self.bodies.setdefault(request.path, []).append(await request.json())
        return web.Response(status=200, text="ok")

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@asynccontextmanager
async def hook_server(hook: Hook) -> AsyncIterator[Hook]:
    app = web.Application()
    app.router.add_post("/{name}", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    hook.base = f"http://127.0.0.1:{port}"
    try:
        yield hook
    finally:
        await runner.cleanup()
