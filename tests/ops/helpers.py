"""Records and Kafka I/O for the operator-command tests."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from rollwatch.commands import (
    AckStatus,
    Action,
    ControlAck,
    Evidence,
    Reason,
    RollbackCommand,
    TicketRef,
    encode_ack,
    encode_command,
)
from rollwatch.kafka import ensure_topics, make_producer
from rollwatch.settings import Settings

__all__ = ["ROOT", "ack", "ack_item", "command", "command_item", "ops_argv", "ops_env", "produce", "write_config"]

ROOT = Path(__file__).resolve().parents[2]


def command(
    command_id: str,
    workflow: str = "support-summary",
    action: Action = "restore_route_and_prompt",
    *,
    at: datetime | None = None,
    gate: str = "json-failures",
    observed: float = 0.075,
    threshold: float = 0.01,
) -> RollbackCommand:
    flags: dict[str, object] = (
        {"ai.rollout.percent": 1.0}
        if action in ("reduce_rollout", "promote")
        else {"ai.route.provider": "support-summary/stable", "ai.prompt.version": "support-summary-v14"}
    )
    return RollbackCommand.model_validate(
        {
            "command_id": command_id,
            "issued_at": at or datetime.now(UTC),
            "workflow": workflow,
            "action": action,
            "flags": flags,
            "reason": Reason(
                gate=gate,
                metric="schema_failure_rate",
                observed=observed,
                threshold=threshold,
                control=0.001,
                window="last 200 calls",
                samples={"candidate": 200, "control": 3800},
            ),
            "evidence": Evidence(trace_ids=["tr-1"], event_ids=["ev-1"]),
            "issued_by": "rollwatch-worker",
            "ticket": TicketRef(id="REL-2041", revision=3),
        },
        strict=False,
    )


def ack(command_id: str, workflow: str, status: AckStatus = "applied", detail: str | None = None) -> ControlAck:
    return ControlAck(
        command_id=command_id,
        consumer="flagstore",
        applied_at=datetime.now(UTC),
        workflow=workflow,
        status=status,
        detail=detail,
    )


async def produce(settings: Settings, items: list[tuple[str, bytes, str, int | None]]) -> None:
    """Send (role, value, key, timestamp_ms) messages and wait for each."""
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        for role, value, key, ts in items:
            await producer.send_and_wait(settings.topics()[role], value, key=key.encode(), timestamp_ms=ts)
    finally:
        await producer.stop()


def command_item(cmd: RollbackCommand, ts: int | None = None) -> tuple[str, bytes, str, int | None]:
    return ("control", encode_command(cmd), cmd.workflow, ts)


def ack_item(a: ControlAck) -> tuple[str, bytes, str, int | None]:
    return ("acks", encode_ack(a), a.workflow or "-", None)


def write_config(settings: Settings, path: Path) -> Path:
    """The TOML file a subprocess reads: the test's broker and topic names."""
    keys = ("bootstrap_servers", *(f"topic_{role}" for role in settings.topics()), "web_port", "signing_key_id")
    lines = [f"{k} = {json.dumps(getattr(settings, k))}\n" for k in keys]
    if settings.signing_key is not None:  # ticket publish signs; consumers refuse unsigned tickets
        lines.append(f"signing_key = {json.dumps(settings.signing_key.get_secret_value())}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def ops_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "rollwatch.ops", *args]


def ops_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLWATCH_") and k != "NO_COLOR"}
    env["PYTHONPATH"] = str(ROOT)
    return env | extra
