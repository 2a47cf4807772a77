"""The other way to feed a gateway's cache: poll the flag store's HTTP endpoint.

For gateways that cannot reach Kafka. Slower than the control topic (a rollback lands
within one ``interval_s``). The flag store serves each workflow's flags document signed
by its key, as on the flags topic; given a keyring the poller verifies it and refuses
anything else. Without a keyring it trusts the channel (serve the flag store over one
you trust). The ticket's base state in the answer is not signed: it is used only for a
workflow with no ticket known here.
A failed poll keeps the last known flags: a flag store outage must not undo a rollback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from urllib.parse import quote

import aiohttp
import orjson

from rollwatch.control.errors import StateFormatError
from rollwatch.control.state import FlagMap, decode_state
from rollwatch.gateway.cache import FlagCache
from rollwatch.trust import Keyring, SignatureError

__all__ = ["FlagStorePoller"]

log = logging.getLogger(__name__)


class FlagStorePoller:
    """Every ``interval_s``, fetch ``GET {url}/flags/{workflow}`` for each workflow into ``cache``."""

    def __init__(
        self,
        cache: FlagCache,
        url: str,
        workflows: Sequence[str],
        interval_s: float = 1.0,
        keys: Keyring | None = None,
    ) -> None:
        self.keys = keys
        self.cache = cache
        self.url = url.rstrip("/")
        self.workflows = tuple(workflows)
        self.interval_s = interval_s
        self.failures = 0
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    async def poll_once(self) -> int:
        """One round; how many workflows' flags changed."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=max(self.interval_s, 1.0)))
        changed = 0
        for workflow in self.workflows:
            try:
                async with self._session.get(f"{self.url}/flags/{quote(workflow, safe='')}") as response:
                    if response.status == 404:
                        continue
                    response.raise_for_status()
                    body = orjson.loads(await response.read())
                changed += self._take(workflow, body)
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, StateFormatError, SignatureError) as exc:
                self.failures += 1
                log.warning("flag store poll of %r failed; keeping the last flags: %s", workflow, exc)
        return changed

    def _take(self, workflow: str, body: dict[str, object]) -> int:
        base = body.get("base")
        changed = 0
        if isinstance(base, dict) and self.cache.tickets.get(workflow) is None:
            new_base: FlagMap = {str(k): v for k, v in base.items() if isinstance(v, str | bool | float | int)}
            if self.cache.defaults.get(workflow) != new_base:
                self.cache.defaults[workflow] = new_base
                changed = 1
        layers = body.get("layers")
        if isinstance(layers, dict) and self.cache.merge(decode_state(orjson.dumps(layers), self.keys)):
            return 1
        if changed:
            self.cache.notify(workflow)
        return changed

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval_s)

    async def start(self) -> FlagStorePoller:
        await self.poll_once()
        self._task = asyncio.create_task(self._run(), name="rollwatch-flagstore-poller")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
