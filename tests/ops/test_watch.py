"""``rollwatch status --watch``: redrawn in place on a pseudo-terminal, plain views when piped, JSON per change.

A stand-in worker (a local aiohttp server) serves ``/status`` built by the real engine with
the example ticket installed, then changes it (a pause, an escalation); the control and acks
topics on the embedded broker carry a command and its ack.
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from rollwatch.broker import free_port
from rollwatch.gates.engine import Engine
from rollwatch.settings import Settings
from tests.control.helpers import example_ticket
from tests.ops.helpers import ROOT, ack, ack_item, command, command_item, ops_argv, ops_env, produce, write_config

pytestmark = pytest.mark.integration

WF = "support-summary"
ANSI = re.compile(r"\x1b\[[0-9;]*[mHJ]")
REDRAW = "\x1b[H\x1b[2J"


def engine_status(*, paused: bool = False, escalate: bool = False) -> dict[str, Any]:
    engine = Engine(WF)
    engine.install(example_ticket())
    now = int(time.time() * 1000)
    engine.evaluate(now)
    engine.memory.healthy_since_ms = now - 15 * 60_000  # 45 minutes of the 60-minute hold left
    engine.memory.paused = paused
    if escalate:
        engine.memory.escalations["rw-esc-1"] = {
            "command_id": "rw-esc-1",
            "action": "disable_segment",
            "flags": {"ai.action.mode": "disabled"},
            "reason": {"gate": "safety-blocks"},
        }
    return engine.status()


@dataclass
class FakeWorker:
    """Serves /status; after ``change_after`` requests it serves the changed engine."""

    change_after: int
    requests: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def status(self, request: web.Request) -> web.Response:
        self.requests += 1
        engine = self.bodies[0] if self.requests <= self.change_after else self.bodies[1]
        body = {"worker": "w1", "ready": True, "workflows": {WF: {"engine": engine}}}
        return web.Response(body=orjson.dumps(body), content_type="application/json")


async def serve(fake: FakeWorker) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/status", fake.status)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def control(kafka_settings: Settings, tmp_path: Path) -> Path:
    """A config file whose control topic holds a worker command and the flag store's ack."""
    await produce(kafka_settings, [command_item(command("cmd-1", WF)), ack_item(ack("cmd-1", WF))])
    return write_config(kafka_settings, tmp_path / "rollwatch.toml")


def read_pty(fd: int, until: Any, timeout: float = 20.0) -> str:
    buffer = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = buffer.decode(errors="replace")
        if until(text):
            return text
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                buffer += os.read(fd, 65536)
            except OSError:
                break
    raise AssertionError(f"not seen within {timeout}s:\n{ANSI.sub('', buffer.decode(errors='replace'))}")


async def test_on_a_terminal_the_view_is_redrawn_in_place(control: Path) -> None:
    fake = FakeWorker(change_after=3, bodies=[engine_status(), engine_status(paused=True, escalate=True)])
    async for url in serve(fake):
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            ops_argv("status", "--watch", "--worker", url, "--interval", "0.3", "-c", str(control)),
            stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, cwd=ROOT, env=ops_env(TERM="xterm"),
        )  # fmt: skip
        os.close(slave)
        try:
            first = await asyncio.to_thread(
                read_pty, master, lambda t: "canary step 1/5 at 5%" in ANSI.sub("", t) and "flagstore applied" in t
            )
            plain = ANSI.sub("", first)
            assert re.search(r"canary step 1/5 at 5%; holding, 4[45]m\d\ds left", plain), plain
            assert "restore_route_and_prompt by rollwatch-worker (cmd-1): flagstore applied" in plain
            later = await asyncio.to_thread(read_pty, master, lambda t: "ESCALATED" in t)
            screen = first + later
            assert screen.count(REDRAW) >= 2  # each frame clears the screen and draws again from the top
            after = ANSI.sub("", later.rsplit(REDRAW, 1)[-1])
            assert "canary step 1/5 at 5%; paused" in after
            assert (
                "ESCALATED rw-esc-1 disable_segment (gate safety-blocks): may approve: priya.natarajan, ic-rotation"
                in after
            )
            assert f'rollwatch approve rw-esc-1 --workflow {WF} --reason "..."' in after
            proc.send_signal(signal.SIGINT)
            assert proc.wait(15) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)


async def test_piped_it_prints_a_plain_view_per_change_and_json_one_object_per_change(control: Path) -> None:
    # (The acks topic's part of the view is covered on the terminal above.)
    fake = FakeWorker(change_after=3, bodies=[engine_status(), engine_status(paused=True)])
    async for url in serve(fake):
        # Without the topics, a change can only come from the worker: polls that change nothing print nothing.
        argv = ops_argv(
            "status", "--watch", "--worker", url, "--no-commands", "--interval", "0.2", "--frames", "2",
            "-c", str(control),
        )  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=ops_env()
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        text = out.decode()
        assert "\x1b" not in text  # no redraw, no colour in a pipe
        views = re.split(r"^--- \d{4}-\d{2}-\d{2}T[\d:.]+Z ---$", text, flags=re.M)[1:]
        assert len(views) == 2 and fake.requests >= 4  # polls without a change printed nothing
        assert "holding" in views[0] and "paused" in views[1]

        fake.requests = 0
        argv = [*argv, "--json"]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=ops_env()
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        objects = [orjson.loads(line) for line in out.decode().splitlines()]
        assert [o["workflows"][0]["canary"]["state"] for o in objects] == ["holding", "paused"]
        first = objects[0]["workflows"][0]
        assert first["canary"]["percent"] == 5.0 and first["canary"]["step"] == 1
        assert first["commands"] == []  # --no-commands
        assert {g["gate"] for g in first["gates"]} >= {"json-failures", "safety-blocks"}
