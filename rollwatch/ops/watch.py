"""``rollwatch status --watch``: a live view of each canary, in the manner of ``argo rollouts get --watch``.

Per workflow: the canary step and percent, the time left in the current hold (or why
there is none: paused, aborted, frozen, rolled back), each gate with its state and
evidence, the escalations waiting for a person and who may approve them, and the last
commands with every consumer's ack.

How it is shown depends on where it goes: on a terminal the whole view is redrawn in
place every poll; piped, a view is printed (as plain lines, under a time stamp) only when
something other than the hold countdown changed; ``--json`` prints one object per such
change. The worker's ``/status`` gives the engine's view; the control and acks topics give
the commands and acks (:class:`ControlLog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias

import orjson

from rollwatch.commands import ControlAck, RollbackCommand, rfc3339
from rollwatch.ops.errors import StatusError
from rollwatch.ops.records import TailRecord
from rollwatch.ops.status import StatusReport, collect_status, render_status

__all__ = ["REDRAW", "ControlLog", "Mode", "Watcher", "render_watch", "watch_status", "watch_view"]

REDRAW: Final = "\x1b[H\x1b[2J"
"""Cursor home, clear screen: the redraw of a terminal frame."""
Mode: TypeAlias = Literal["tty", "lines", "json"]
_KEEP: Final = 5
_VOLATILE: Final = ("hold_left_s",)


@dataclass(slots=True)
class ControlLog:
    """The last commands per workflow and every ack of them, from the control and acks topics."""

    commands: dict[str, deque[RollbackCommand]] = field(default_factory=dict)
    acks: dict[str, list[ControlAck]] = field(default_factory=dict)

    def add(self, record: TailRecord) -> None:
        if record.command is not None:
            recent = self.commands.setdefault(record.command.workflow, deque(maxlen=_KEEP))
            if all(c.command_id != record.command.command_id for c in recent):
                recent.append(record.command)
        elif record.ack is not None:
            self.acks.setdefault(record.ack.command_id, []).append(record.ack)

    def recent(self, workflow: str) -> list[dict[str, Any]]:
        """Newest first: each command with its acks (consumer -> status and detail)."""
        out = []
        for command in reversed(self.commands.get(workflow, ())):
            acks = {a.consumer: {"status": a.status, "detail": a.detail} for a in self.acks.get(command.command_id, [])}
            out.append(
                {
                    "command_id": command.command_id,
                    "at": rfc3339(command.issued_at),
                    "action": command.action,
                    "by": command.issued_by,
                    "gate": command.reason.gate,
                    "acks": acks,
                }
            )
        return out


def _step(engine: Mapping[str, Any]) -> dict[str, Any]:
    percent = engine.get("rollout_percent")
    plan = [float(p) for p in engine.get("plan") or ()]
    index = plan.index(float(percent)) + 1 if isinstance(percent, int | float) and float(percent) in plan else None
    return {"percent": percent, "step": index, "steps": len(plan) or None}


def _hold(engine: Mapping[str, Any], now_ms: int) -> tuple[str, int | None]:
    """(what holds the canary, seconds left in the promotion hold or None)."""
    for word in ("aborted", "paused", "frozen", "rolled_back"):
        if engine.get(word):
            return word.replace("_", " "), None
    since, hold = engine.get("healthy_since_ms"), engine.get("hold_ms")
    if not isinstance(since, int) or not isinstance(hold, int):
        return "waiting for every gate to be healthy", None
    return "holding", max(0, (since + hold - now_ms) // 1000)


def watch_view(report: StatusReport, log: ControlLog, now_ms: int) -> dict[str, Any]:
    """What the watch shows, as one JSON-able object."""
    workflows = []
    for view in report.workflows:
        engine = view.engine
        state, left = _hold(engine, now_ms)
        workflows.append(
            {
                "workflow": view.workflow,
                "worker": view.worker,
                "ticket": engine.get("ticket"),
                "canary": _step(engine) | {"state": state, "hold_left_s": left},
                "gates": [
                    {
                        "gate": g.get("gate"),
                        "segment": g.get("segment"),
                        "state": g.get("state"),
                        "observed": g.get("observed"),
                        "threshold": g.get("threshold"),
                        "control": g.get("control"),
                        "samples": g.get("samples"),
                        "detail": g.get("detail"),
                    }
                    for g in engine.get("gates") or ()
                ],
                "escalations": [
                    {k: e.get(k) for k in ("command_id", "action", "gate", "segment", "may_approve", "approve")}
                    for e in engine.get("escalations") or ()
                ],
                "commands": log.recent(view.workflow),
            }
        )
    return {"unreachable": report.unreachable, "workflows": workflows}


def _stable(view: Mapping[str, Any]) -> bytes:
    """The view without the countdown: what counts as a change for piped and JSON output."""
    copy = orjson.loads(orjson.dumps(view))
    for workflow in copy["workflows"]:
        for key in _VOLATILE:
            workflow["canary"].pop(key, None)
    return orjson.dumps(copy, option=orjson.OPT_SORT_KEYS)


def render_watch(report: StatusReport, view: Mapping[str, Any], *, color: bool = False) -> str:
    """The status table plus, per workflow, the canary's hold, pending escalations and acks."""
    lines = [render_status(report, color=color), ""]
    for workflow in view["workflows"]:
        canary = workflow["canary"]
        step = f"step {canary['step']}/{canary['steps']}" if canary["step"] else "off plan"
        left = canary["hold_left_s"]
        hold = f"{canary['state']}, {left // 60}m{left % 60:02d}s left" if left is not None else canary["state"]
        percent = canary["percent"]
        lines.append(f"{workflow['workflow']}: canary {step} at {'-' if percent is None else f'{percent:g}%'}; {hold}")
        for esc in workflow["escalations"]:
            who = ", ".join(esc["may_approve"] or []) or "nobody"
            lines.append(f"  ESCALATED {esc['command_id']} {esc['action']} (gate {esc['gate']}): may approve: {who}")
            lines.append(f"    {esc['approve']}")
        for cmd in workflow["commands"]:
            acks = ", ".join(f"{c} {a['status']}" for c, a in sorted(cmd["acks"].items())) or "no ack yet"
            lines.append(f"  {cmd['at']} {cmd['action']} by {cmd['by']} ({cmd['command_id']}): {acks}")
    return "\n".join(lines).rstrip("\n")


@dataclass(slots=True)
class Watcher:
    """Emits frames: every poll on a terminal (redrawn in place), on change otherwise."""

    out: Callable[[str], None]
    mode: Mode
    color: bool = False
    _last: bytes | None = None
    frames: int = 0

    def show(self, report: StatusReport, log: ControlLog, now_ms: int) -> bool:
        """Show this poll's view; whether anything was written."""
        view = watch_view(report, log, now_ms)
        stable = _stable(view)
        changed = stable != self._last
        self._last = stable
        if self.mode == "tty":
            self.out(REDRAW + render_watch(report, view, color=self.color))
        elif not changed:
            return False
        elif self.mode == "json":
            self.out(orjson.dumps(view | {"at": rfc3339(datetime.fromtimestamp(now_ms / 1000, UTC))}).decode())
        else:
            stamp = rfc3339(datetime.fromtimestamp(now_ms / 1000, UTC))
            self.out(f"--- {stamp} ---\n{render_watch(report, view)}")
        self.frames += 1
        return True

    async def run(
        self,
        poll: Callable[[], Awaitable[StatusReport]],
        log: ControlLog,
        clock: Callable[[], float],
        stop: asyncio.Event,
        interval: float = 2.0,
        max_frames: int | None = None,
    ) -> None:
        """Poll until ``stop`` (or ``max_frames`` frames were written)."""
        while not stop.is_set():
            self.show(await poll(), log, int(clock() * 1000))
            if max_frames is not None and self.frames >= max_frames:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


async def watch_status(
    urls: list[str],
    out: Callable[[str], None],
    mode: Mode,
    stop: asyncio.Event,
    *,
    records: Callable[[asyncio.Event], AsyncIterator[list[TailRecord]]] | None = None,
    color: bool = False,
    interval: float = 2.0,
    timeout: float = 3.0,
    max_frames: int | None = None,
) -> int:
    """Run the watch; ``records`` follows the control and acks topics (none: no commands shown)."""
    log = ControlLog()

    async def follow() -> None:
        assert records is not None
        async for batch in records(stop):
            for record in batch:
                log.add(record)

    async def poll() -> StatusReport:
        try:
            return await asyncio.to_thread(collect_status, urls, timeout=timeout)
        except StatusError as exc:
            return StatusReport(unreachable={"workers": str(exc)})

    reader = asyncio.create_task(follow()) if records is not None else None
    watcher = Watcher(out, mode, color)
    try:
        await watcher.run(poll, log, time.time, stop, interval, max_frames)
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    return watcher.frames
