"""Webhook notifications against a local HTTP server: bodies, retries with backoff, never blocking."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from rollwatch.notify import Notifier, notice_for_command, notice_for_escalation
from rollwatch.ops.manual import manual_command
from tests.control.helpers import command, example_ticket
from tests.notify.hook import Hook, hook_server


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


ESCALATION = {
    "command_id": "rw-esc-1",
    "action": "disable_segment",
    "gate": "safety-blocks",
    "segment": None,
    "flags": {"ai.action.mode": "disabled"},
    "may_approve": ["priya.natarajan", "ic-rotation"],
    "approve": 'rollwatch approve rw-esc-1 --workflow support-summary --reason "..."',
}


async def test_slack_and_json_bodies_arrive_after_retries() -> None:
    ticket = example_ticket()
    rollback = command(ticket, "restore_route", {"ai.route.provider": ticket.control.route}, command_id="c-1")
    async with hook_server(Hook(failures=2)) as hook:
        notifier = Notifier([hook.url("/slack")], [hook.url("/json")], retries=4, backoff_s=0.01)
        await notifier.start()
        notifier.post(notice_for_command(rollback))
        notifier.post(notice_for_escalation("support-summary", ESCALATION))
        await wait_for(lambda: len(hook.bodies.get("/slack", [])) == 2 and len(hook.bodies.get("/json", [])) == 2)
        await notifier.stop()
    # Two 503s were retried: 4 notices delivered in 6 attempts, none given up.
    assert hook.attempts == 6 and notifier.counts == {"queued": 2, "sent": 4, "failed": 0, "dropped": 0}
    slack = [body["text"] for body in hook.bodies["/slack"]]
    assert set(hook.bodies["/slack"][0]) == {"text"}
    rolled = next(t for t in slack if t.startswith("rollwatch rolled back"))
    assert "support-summary: restore_route (ai.route.provider=support-summary/stable); gate g: m 1 vs 0.5" in rolled
    page = next(t for t in slack if "needs a person" in t)
    assert "May approve: priya.natarajan, ic-rotation" in page
    assert 'Type: rollwatch approve rw-esc-1 --workflow support-summary --reason "..."' in page
    generic = {body["kind"]: body for body in hook.bodies["/json"]}
    assert generic["rollback"]["command_id"] == "c-1" and generic["rollback"]["flags"] == rollback.flags
    assert generic["escalation"]["may_approve"] == ["priya.natarajan", "ic-rotation"]
    assert generic["escalation"]["approve"] == ESCALATION["approve"]


async def test_a_manual_command_names_the_person_and_their_reason() -> None:
    ticket = example_ticket()
    abort = manual_command(
        "abort", ticket, {}, issued_by="ic-rotation", reason="garbled output", issued_at=datetime.now(UTC),
        role="incident_commander",
    )  # fmt: skip
    notice = notice_for_command(abort)
    assert notice.kind == "manual"
    assert notice.text.startswith("ic-rotation ran abort on support-summary: ai.route.provider=support-summary/stable")
    assert notice.text.endswith("reason: garbled output")
    assert notice.fields["acting_as"] == "incident_commander"


async def test_a_hanging_webhook_never_blocks_the_poster_and_a_refusing_one_is_not_retried() -> None:
    async with hook_server(Hook(delay_s=1.0)) as slow:
        notifier = Notifier([], [slow.url("/json")], timeout_s=0.2, retries=1, queue_size=10)
        await notifier.start()
        for i in range(100):
            notifier.post(notice_for_escalation(f"wf-{i}", ESCALATION))  # returns at once, whatever the webhook does
        assert notifier.counts["queued"] == 100 and notifier.counts["dropped"] >= 89
        await wait_for(lambda: notifier.counts["failed"] >= 1, timeout=5)
        await notifier.stop(drain_s=0)
    async with hook_server(Hook(status=400)) as refusing:
        notifier = Notifier([refusing.url("/slack")], [], retries=5, backoff_s=0.01)
        await notifier.start()
        notifier.post(notice_for_escalation("wf", ESCALATION))
        await wait_for(lambda: notifier.counts["failed"] == 1)
        await notifier.stop()
    assert refusing.attempts == 1  # a 400 will not get better by asking again
