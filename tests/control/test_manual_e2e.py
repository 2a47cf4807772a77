"""Issue 14's acceptance, end to end: a real worker (subprocess, production engine), the flag store with
Redis and its HTTP answer, and a gateway, on the embedded broker.

A gate escalates because the automation lacks the authority; an approval by a role that
may not is refused (by the CLI in one line, and by every consumer, audited, when sent
anyway); by one that may, the flags change and every consumer acks; ``undo`` restores the
flags; ``abort`` stops the worker acting on its own until ``resume``. Who may do what comes
from the example ticket's authority block as written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rollwatch.commands import decode_command
from rollwatch.events import CallEvent
from rollwatch.ops.errors import OpsError
from rollwatch.ops.manual import approval_command
from rollwatch.ops.manual_cli import issue, pending_escalation
from rollwatch.settings import Settings
from rollwatch.tickets import Ticket
from tests.agents.harness import WorkerProcess, produce_events, read_topic, write_config
from tests.agents.harness import wait_until as poll
from tests.control.helpers import PEOPLE, AckReader, by, publish
from tests.control.test_trust_attacks import WF, Plane, plane, settled
from tests.notify.hook import Hook, hook_server

pytestmark = pytest.mark.integration
__all__ = ["plane"]

CONSUMERS = ("flagstore", "gateway-sec")


def as_person(settings: Settings, name: str) -> Settings:
    return settings.model_copy(update={"signing_key_id": f"{name}-key", "signing_key": SecretStr(PEOPLE[name][0])})


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    async with hook_server(Hook()) as server:
        yield server


@pytest.fixture
def worker(topics: Settings, tmp_path: Path, hook: Hook) -> Iterator[WorkerProcess]:
    config = write_config(topics, tmp_path / "rollwatch.toml")
    with config.open("a", encoding="utf-8") as out:
        out.write(f'keyring_file = "{topics.keyring_file}"\n')
        out.write(f'notify_slack_webhooks = ["{hook.url("/slack")}"]\n')
    process = WorkerProcess(
        config,
        f"rw-manual-{time.time_ns()}",
        "w1",
        tmp_path / "w1.log",
        engine="rollwatch.agents.engine_factory:production_factory",
    )
    process.start()
    try:
        yield process
    finally:
        process.kill()
        print(f"----- worker (last lines) -----\n{process.tail(80)}")


def calls(ticket: Ticket, start: int, n: int, *, blocked_every: int = 0, failing_every: int = 0) -> list[CallEvent]:
    now = int(time.time() * 1000)
    events = []
    for i in range(start, start + n):
        for arm, route in (("candidate", ticket.candidate.route), ("control", ticket.control.route)):
            bad = arm == "candidate"
            events.append(
                CallEvent(
                    event_id=f"{arm}-{i}",
                    ts_ms=now - 30_000 + (i - start) * 10,
                    workflow=WF,
                    route=route,
                    latency_ms=100.0,
                    status="error" if bad and failing_every and i % failing_every == 0 else "ok",
                    schema_valid=True,
                    safety_blocked=bad and blocked_every > 0 and i % blocked_every == 0,
                    task_success=True,
                    cost_usd=0.001,
                    arm=arm,  # type: ignore[arg-type]
                )
            )
    return events


def engine_of(process: WorkerProcess) -> dict[str, Any] | None:
    status = process.status() or {}
    found: dict[str, Any] | None = (status.get("workflows") or {}).get(WF, {}).get("engine")
    return found


async def worker_commands(settings: Settings, ticket: Ticket) -> list[str]:
    records = await read_topic(settings, settings.topic_control, timeout=2.0)
    ids = []
    for record in records:
        try:
            command = decode_command(record.value)
        except Exception:
            continue
        if command.issued_by == ticket.owners.automation:
            ids.append(command.command_id)
    return ids


async def test_escalation_approval_undo_abort_and_resume_with_a_live_worker(
    plane: Plane, worker: WorkerProcess, ticket: Ticket, hook: Hook
) -> None:
    settings = plane.settings
    await poll(worker.ready, what="worker ready", timeout=60)
    start = await settled(plane)
    url = f"http://127.0.0.1:{worker.web_port}"

    # 1. Safety blocks double on the candidate: the ticket's action is disable_segment, which the
    #    automation may not take, so the worker escalates and names who may approve.
    await produce_events(settings, [calls(ticket, 0, 700, blocked_every=5)])
    pending = await poll(lambda: (engine_of(worker) or {}).get("escalations"), what="an escalation", timeout=30)
    [view] = pending
    assert view["action"] == "disable_segment" and view["gate"] == "safety-blocks"
    assert view["may_approve"] == ["priya.natarajan", "ic-rotation"]
    escalated = view["command_id"]
    assert view["approve"].startswith(f"rollwatch approve {escalated} --workflow {WF}")
    assert escalated not in await worker_commands(settings, ticket)  # nothing published on its own
    decision = pending_escalation([url], WF, escalated)
    # The worker pages people on its webhook: who may approve, and the exact command.
    await poll(lambda: hook.bodies.get("/slack"), what="the escalation posted to the webhook", timeout=15)
    [page] = hook.bodies["/slack"]
    assert "May approve: priya.natarajan, ic-rotation" in page["text"]
    assert f"Type: rollwatch approve {escalated} --workflow {WF}" in page["text"]

    # 2. The engineering owner may not disable a segment: one line from the CLI, nothing sent ...
    with pytest.raises(OpsError) as refused:
        await issue(as_person(settings, "maya.chen"), "approve", WF, "looks bad", escalation=decision)
    assert "risk_owner, incident_commander may; engineering_owner may not disable_segment" in str(refused.value)
    # ... and sent anyway, every consumer refuses it and the flag store audits it.
    rogue = by(
        "maya.chen",
        approval_command(ticket, decision, issued_by="maya.chen", reason="x", issued_at=datetime.now(UTC)),
    )
    async with AckReader(settings) as acks:
        await publish(settings, rogue)
        for consumer in CONSUMERS:
            ack = await acks.wait_for(rogue.command_id, consumer)
            assert ack.status == "refused" and (ack.detail or "").startswith("unauthorized:"), ack.detail
    assert [r.code for r in plane.store.audit if r.command_id == rogue.command_id] == ["unauthorized"]
    assert await plane.flags() == start
    assert (engine_of(worker) or {}).get("escalations"), "a refused approval settles nothing"

    # 3. The risk owner approves: the escalated flags, with the original evidence, applied everywhere.
    async with AckReader(settings) as acks:
        approval = await issue(as_person(settings, "priya.natarajan"), "approve", WF, "confirmed", escalation=decision)
        assert approval.command_id == rogue.command_id  # one id per escalation: applied at most once
        for consumer in CONSUMERS:
            first, second = await acks.collect(approval.command_id, consumer, 2)
            assert (first.status, second.status) == ("refused", "applied")
    assert approval.evidence.model_dump(mode="json") == decision["evidence"]
    assert approval.evidence.event_ids, "the original evidence travels with the approval"
    approved = await settled(plane)
    for name, value in decision["flags"].items():
        assert approved[1][name] == value and approved[3][name] == value
    await poll(lambda: (engine_of(worker) or {}).get("escalations") == [], what="escalation settled")

    # 4. Undo restores what the approval changed.
    async with AckReader(settings) as acks:
        undo = await issue(
            as_person(settings, "priya.natarajan"), "undo", WF, "segment fixed", target=approval.command_id
        )
        for consumer in CONSUMERS:
            assert (await acks.wait_for(undo.command_id, consumer)).status == "applied"
    restored = await settled(plane)
    assert (restored[1], restored[2]["flags"], restored[3]) == (start[1], start[2]["flags"], start[3])

    # 5. The incident commander aborts: the worker stops acting on its own, even on a clear breach.
    async with AckReader(settings) as acks:
        abort = await issue(as_person(settings, "ic-rotation"), "abort", WF, "garbled output")
        for consumer in CONSUMERS:
            assert (await acks.wait_for(abort.command_id, consumer)).status == "applied"
    await poll(lambda: (engine_of(worker) or {}).get("aborted"), what="worker aborted")
    before = set(await worker_commands(settings, ticket))
    await produce_events(settings, [calls(ticket, 10_000, 400, failing_every=3)])
    await poll(
        lambda: (engine_of(worker) or {}).get("routes", {}).get(ticket.candidate.route, {}).get("calls", 0) >= 1100,
        what="the failing calls counted",
    )
    await asyncio.sleep(3)  # several judge ticks
    assert set(await worker_commands(settings, ticket)) == before

    # 6. Resume: the worker decides again, and the breach it sees rolls back.
    await issue(as_person(settings, "ic-rotation"), "resume", WF, "investigation done")
    await poll(lambda: (engine_of(worker) or {}).get("aborted") is False, what="worker resumed")
    await produce_events(settings, [calls(ticket, 20_000, 50, failing_every=3)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if set(await worker_commands(settings, ticket)) - before:
            break
        await asyncio.sleep(0.5)
    assert set(await worker_commands(settings, ticket)) - before, "after resume the worker rolls back on its own"
