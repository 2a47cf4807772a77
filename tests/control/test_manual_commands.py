"""People act through rollwatch: manual commands through the CLI's path, checked by every consumer.

A live flag store (with Redis and its HTTP answer) and a gateway on the embedded broker.
Each person signs with their own key (:data:`tests.control.helpers.PEOPLE`); what each may
do comes from the example ticket's authority block as written.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import SecretStr

from rollwatch.commands import encode_command
from rollwatch.ops.errors import OpsError
from rollwatch.ops.manual import manual_command
from rollwatch.ops.manual_cli import issue
from rollwatch.settings import Settings
from rollwatch.signing import sign_command
from rollwatch.tickets import Ticket, candidate_flags
from rollwatch.trust import generate_ed25519, parse_signing_key
from tests.control.helpers import PEOPLE, AckReader, by, publish
from tests.control.test_trust_attacks import WF, Plane, plane, settled

pytestmark = pytest.mark.integration
__all__ = ["plane"]

CONSUMERS = ("flagstore", "gateway-sec")


def as_person(settings: Settings, name: str) -> Settings:
    return settings.model_copy(update={"signing_key_id": f"{name}-key", "signing_key": SecretStr(PEOPLE[name][0])})


async def test_abort_undo_and_refusals_through_every_consumer(plane: Plane, ticket: Ticket) -> None:
    start = await settled(plane)
    assert start[1]["ai.route.provider"] == ticket.candidate.route
    # The risk owner may not abort: the CLI says so in one line and sends nothing.
    with pytest.raises(OpsError, match="incident_commander may; risk_owner may not abort"):
        await issue(as_person(plane.settings, "priya.natarajan"), "abort", WF, "garbled summaries")
    # Sent anyway (bypassing the CLI), every consumer refuses it and the flag store audits it.
    rogue = by(
        "priya.natarajan",
        manual_command("abort", ticket, start[1], issued_by="priya.natarajan", reason="x", issued_at=datetime.now(UTC)),
    )
    async with AckReader(plane.settings) as acks:
        await publish(plane.settings, rogue)
        for consumer in CONSUMERS:
            ack = await acks.wait_for(rogue.command_id, consumer)
            assert ack.status == "refused" and ack.detail is not None
            assert ack.detail.startswith("unauthorized:"), ack.detail
    assert [r.code for r in plane.store.audit if r.command_id == rogue.command_id] == ["unauthorized"]
    assert await plane.flags() == start

    # The incident commander aborts: control route and prompt, no rollout, everywhere.
    ic = as_person(plane.settings, "ic-rotation")
    async with AckReader(plane.settings) as acks:
        abort = await issue(ic, "abort", WF, "garbled summaries", role="incident_commander", expires="30m")
        assert abort.issued_by == "ic-rotation" and abort.acting_as == "incident_commander"
        for consumer in CONSUMERS:
            assert (await acks.wait_for(abort.command_id, consumer)).status == "applied"
    aborted = await settled(plane)
    assert aborted[1]["ai.route.provider"] == ticket.control.route
    assert aborted[1]["ai.prompt.version"] == ticket.control.prompt_version
    assert aborted[1]["ai.rollout.percent"] == 0
    assert aborted[2]["flags"]["ai.rollout.percent"] == 0  # Redis

    # Undo restores the flags in force before the abort (the ticket's own canary state).
    async with AckReader(plane.settings) as acks:
        undo = await issue(ic, "undo", WF, "false alarm: parser fixed", target=abort.command_id)
        for consumer in CONSUMERS:
            assert (await acks.wait_for(undo.command_id, consumer)).status == "applied"
    restored = await settled(plane)
    want = {str(k): v for k, v in candidate_flags(ticket).items()}
    for name in abort.flags:
        assert restored[1][name] == want[name], name
    assert restored[3] == restored[1]  # the gateway agrees


async def test_forged_replayed_expired_and_unknown_key_manual_commands_are_refused(
    plane: Plane, ticket: Ticket
) -> None:
    start = await settled(plane)
    now = datetime.now(UTC)

    def abort(expires: timedelta | None = timedelta(minutes=5), at: datetime = now) -> object:
        return manual_command(
            "abort", ticket, start[1], issued_by="ic-rotation", reason="drill", issued_at=at, expires_in=expires
        )

    good = by("ic-rotation", abort())  # type: ignore[arg-type]
    forged_doc = good.model_dump(mode="json") | {"command_id": "man-forged"}  # signature no longer covers it
    expired = by("ic-rotation", abort(timedelta(seconds=1), now - timedelta(seconds=120)))  # type: ignore[arg-type]
    private, _ = generate_ed25519()
    stranger = sign_command(abort(), key=parse_signing_key("ic-rotation-2", private, "ic-rotation"))  # type: ignore[arg-type]
    tampered = good.model_dump(mode="json")
    sig = tampered["signature"]
    sig["value"] = base64.b64encode(b"\0" * 64).decode()
    tampered["command_id"] = "man-badsig"
    cases = {
        "man-forged": ("bad_signature", orjson.dumps(forged_doc)),
        "man-badsig": ("bad_signature", orjson.dumps(tampered)),
        expired.command_id: ("expired", encode_command(expired)),
        stranger.command_id: ("unknown_key", encode_command(stranger)),
    }
    async with AckReader(plane.settings) as acks:
        await publish(plane.settings, *(raw for _, raw in cases.values()), key=WF)
        for command_id, (code, _) in cases.items():
            for consumer in CONSUMERS:
                ack = await acks.wait_for(command_id, consumer)
                assert ack.status == "refused", (command_id, consumer, ack.detail)
                assert ack.detail is not None and ack.detail.startswith(f"{code}:"), (command_id, ack.detail)
            assert [r.code for r in plane.store.audit if r.command_id == command_id] == [code]
        assert await plane.flags() == start
        # The real one applies once; its replay is a duplicate everywhere and changes nothing more.
        await publish(plane.settings, good)
        await publish(plane.settings, good)
        for consumer in CONSUMERS:
            first, second = await acks.collect(good.command_id, consumer, 2)
            assert (first.status, second.status) == ("applied", "duplicate")


async def test_the_flag_store_posts_applied_commands_to_webhooks_without_waiting_for_them(
    topics: Settings, ticket: Ticket
) -> None:
    from rollwatch.flagstore.service import FlagStore
    from tests.notify.hook import Hook, hook_server

    async with hook_server(Hook(failures=1)) as hook:
        settings = topics.model_copy(
            update={"notify_json_webhooks": [hook.url("/json")], "notify_slack_webhooks": [hook.url("/slack")]}
        )
        store = FlagStore(settings, name="flagstore-notify")
        assert store.notifier is not None
        store.notifier.backoff_s = 0.01
        await store.start()
        try:
            abort = by(
                "ic-rotation",
                manual_command(
                    "abort", ticket, {}, issued_by="ic-rotation", reason="garbled output", issued_at=datetime.now(UTC)
                ),
            )
            async with AckReader(settings) as acks:
                await publish(settings, abort)
                assert (await acks.wait_for(abort.command_id, "flagstore-notify")).status == "applied"
            deadline = datetime.now(UTC) + timedelta(seconds=10)
            while len(hook.bodies.get("/json", [])) + len(hook.bodies.get("/slack", [])) < 2:
                assert datetime.now(UTC) < deadline, hook.bodies
                await asyncio.sleep(0.05)
        finally:
            await store.stop()
    [generic] = hook.bodies["/json"]
    assert generic["kind"] == "manual" and generic["command_id"] == abort.command_id
    assert generic["issued_by"] == "ic-rotation" and generic["reason"] == "garbled output"
    assert hook.bodies["/slack"][0]["text"].startswith("ic-rotation ran abort on support-summary")
