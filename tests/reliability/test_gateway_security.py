"""The gateway refuses forged, unsigned, replayed, expired, stale and unauthorized commands.

``tests/control`` proves this for the flag store end to end and for the gateway on a
forged and an unauthorized command (``test_the_gateway_refuses_what_the_flag_store_refuses``).
This completes the gateway's side of issue 8's list through the public entry point
the subscriber feeds every control record to (:meth:`ControlSubscriber.process`, the consumer base's), with
the wire bytes a hostile or stale producer would publish. A refused command must leave
the flags the gateway serves exactly as they were; a replay must be a no-op.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import orjson

from rollwatch.commands import RollbackCommand, encode_command
from rollwatch.gateway import ControlSubscriber, FlagCache
from rollwatch.signing import sign_command
from rollwatch.trust import sign_document, signing_key_from_settings
from tests.control.helpers import command, example_ticket, signed
from tests.reliability.conftest import control_settings_for

WF = "support-summary"


async def test_the_gateway_refuses_every_kind_of_bad_command_and_applies_a_replay_once() -> None:
    settings = control_settings_for("127.0.0.1:9")  # never contacted: process() is fed directly
    ticket = example_ticket()
    cache = FlagCache()
    cache.set_ticket(ticket)
    gateway = ControlSubscriber(settings, cache, consumer_name="gateway-sec", send_acks=False)
    route = {"ai.route.provider": ticket.control.route}
    good = command(ticket, "restore_route", route)
    old = datetime.now(UTC) - timedelta(hours=2)
    cases = {
        "bad_signature": signed(settings, good).model_copy(update={"flags": {"ai.route.provider": "attacker/route"}}),
        "unsigned": good.model_copy(update={"command_id": "sec-unsigned"}),
        "unknown_key": sign_command(good.model_copy(update={"command_id": "sec-unknown"}), "nobody", "whatever"),
        "wrong_secret": sign_command(
            good.model_copy(update={"command_id": "sec-wrong"}), settings.signing_key_id, secrets.token_hex(16)
        ),
        "expired": signed(
            settings, command(ticket, "restore_route", route, issued_at=old, expires_in=timedelta(hours=1))
        ),
        "stale_ticket": signed(settings, command(ticket, "restore_route", route, revision=ticket.revision - 1)),
        "unauthorized": signed(settings, command(ticket, "disable_tools", {"ai.tools.enabled": False})),
        # A trusted key whose command claims another author (sign_command would write the owner).
        "stranger": RollbackCommand.model_validate_json(
            orjson.dumps(
                sign_document(
                    command(ticket, "restore_route", route).model_dump(mode="json") | {"issued_by": "mallory"},
                    signing_key_from_settings(settings),  # type: ignore[arg-type]
                )
            )
        ),
    }
    before = cache.flags(WF)
    for name, cmd in cases.items():
        assert (await gateway.process(encode_command(cmd), 0, 0)).status == "refused", name
        assert gateway.last_refusal is not None
        code = {"wrong_secret": "bad_signature", "stranger": "issuer_mismatch"}.get(name, name)
        assert gateway.last_refusal.code == code, (name, gateway.last_refusal)
        assert cache.flags(WF) == before, name
    junk = await gateway.process(b'{"command_id": "junk"}', 0, 1)  # malformed: refused, counted
    assert (junk.status, junk.code, junk.command, junk.command_id) == ("refused", "malformed", None, "junk")
    assert gateway.counts["refused"] == len(cases) + 1

    valid = signed(settings, good)
    assert (await gateway.process(encode_command(valid), 0, 2)).status == "applied"
    applied = cache.flags(WF)
    assert applied["ai.route.provider"] == ticket.control.route
    assert (await gateway.process(encode_command(valid), 0, 3)).status == "duplicate"  # a replay changes nothing
    assert cache.flags(WF) == applied
    assert gateway.counts["applied"] == 1 and gateway.counts["duplicate"] == 1
