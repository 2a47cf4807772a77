"""Stopping a control consumer never hangs: each step is bounded, an overrun is logged and skipped."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from rollwatch.control import topics


async def test_a_loop_that_ignores_cancellation_does_not_hang_the_stop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(topics, "STOP_STEP_S", 0.2)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # a loop that swallows its cancellation

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="rollwatch.control.topics"):
        await topics.close_clients(task, None, None)
    assert time.monotonic() - started < 2
    assert "stopping the consume loop took over" in caplog.text
    release.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_cancelled_loop_stops_quietly(caplog: pytest.LogCaptureFixture) -> None:
    task = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="rollwatch.control.topics"):
        await topics.close_clients(task, None, None)
    assert task.cancelled()
    assert caplog.text == ""
