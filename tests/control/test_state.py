"""Flag state layering, its document on the flags topic, and the command checks (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from rollwatch.control.errors import StateFormatError
from rollwatch.control.state import APPLIED_MEMORY, FlagBook, WorkflowFlags, decode_state
from rollwatch.control.verify import CommandChecker, TicketBook, authority_refusal
from rollwatch.signing import sign_command
from rollwatch.tickets import Ticket
from rollwatch.trust import Keyring, SignatureError, TrustedKey, parse_signing_key, parse_verify_key
from tests.control.helpers import command

SECRET = "state-test-secret"
FLAGSTORE_KEY = parse_signing_key("fs", SECRET, "rollwatch-flagstore")


def _keyring(*purposes: Any) -> Keyring:
    return Keyring([TrustedKey("fs", "rollwatch-flagstore", parse_verify_key(SECRET), frozenset(purposes))])


NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_segments_overlay_and_workflow_wide_commands_reach_every_segment(ticket: Ticket) -> None:
    book = FlagBook()
    book.apply(command(ticket, "set_route_mode", {"ai.route.mode": "async"}, segment="low-priority"), NOW, 0, 1)
    book.apply(command(ticket, "set_action_mode", {"ai.action.mode": "draft"}, segment="low-priority"), NOW, 0, 2)
    state = book.apply(command(ticket, "set_route_mode", {"ai.route.mode": "sync"}), NOW, 0, 3)
    assert state.segments == {"low-priority": {"ai.action.mode": "draft"}}
    assert state.effective("low-priority", {"ai.route.mode": "batch", "ai.tools.enabled": True}) == {
        "ai.route.mode": "sync",
        "ai.tools.enabled": True,
        "ai.action.mode": "draft",
    }
    book.apply(command(ticket, "set_action_mode", {"ai.action.mode": "review"}), NOW, 0, 4)
    assert state.segments == {}  # emptied layers go away
    assert (state.version, state.offset) == (4, 4)


def test_the_replay_memory_is_bounded_and_survives_the_document(ticket: Ticket) -> None:
    book = FlagBook()
    ids = [f"c{i}" for i in range(APPLIED_MEMORY + 5)]
    for i, cid in enumerate(ids):
        book.apply(command(ticket, "reduce_rollout", {"ai.rollout.percent": 1.0}, command_id=cid), NOW, 1, i)
    assert not book.seen("c0") and book.seen(ids[-1]) and book.seen(ids[5])
    state = book.get(ticket.workflow)
    assert state is not None
    rebuilt = FlagBook()
    rebuilt.load(decode_state(state.to_json(FLAGSTORE_KEY), _keyring("flags")))
    assert rebuilt.seen(ids[-1]) and not rebuilt.seen("c4")
    assert rebuilt.get(ticket.workflow) == state


def test_a_flags_document_must_be_signed_by_a_key_trusted_for_flags(ticket: Ticket) -> None:
    state = WorkflowFlags(ticket.workflow, {"ai.rollout.percent": 5.0}, partition=0, offset=3, applied=["c1"])
    problems = {
        "unsigned": (state.to_json(), _keyring("flags")),
        "key_not_allowed": (state.to_json(FLAGSTORE_KEY), _keyring("commands")),
        "unknown_key": (state.to_json(parse_signing_key("other", SECRET)), _keyring("flags")),
    }
    forged = orjson.loads(state.to_json(FLAGSTORE_KEY))
    forged["flags"]["ai.route.provider"] = "attacker/route"
    problems["bad_signature"] = (orjson.dumps(forged), _keyring("flags"))
    for problem, (doc, keys) in problems.items():
        with pytest.raises(SignatureError) as caught:
            decode_state(doc, keys)
        assert caught.value.problem == problem


def test_newer_documents_win_and_older_ones_are_ignored(ticket: Ticket) -> None:
    book = FlagBook()
    book.apply(command(ticket, "reduce_rollout", {"ai.rollout.percent": 1.0}), NOW, 0, 10)
    older = WorkflowFlags(ticket.workflow, {"ai.rollout.percent": 50.0}, partition=0, offset=9)
    newer = WorkflowFlags(ticket.workflow, {"ai.rollout.percent": 0.0}, partition=0, offset=11)
    assert not book.merge(older)
    assert book.merge(newer)
    assert book.get(ticket.workflow) is newer


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (b"not json", "not JSON"),
        (orjson.dumps({"format": "other"}), "not a rollwatch.flags/v1"),
        (orjson.dumps({"format": "rollwatch.flags/v1", "workflow": ""}), "workflow"),
        (orjson.dumps({"format": "rollwatch.flags/v1", "workflow": "w", "flags": {"ai.route.mode": "fast"}}), "flags"),
        (orjson.dumps({"format": "rollwatch.flags/v1", "workflow": "w", "flags": {"ai.colour": "red"}}), "flags"),
        (orjson.dumps({"format": "rollwatch.flags/v1", "workflow": "w", "applied": [1]}), "applied"),
        (orjson.dumps({"format": "rollwatch.flags/v1", "workflow": "w", "offset": "3"}), "offset"),
    ],
)
def test_unreadable_documents_are_refused_not_guessed(doc: bytes, problem: str) -> None:
    with pytest.raises(StateFormatError, match=problem):
        decode_state(doc, None)


def _refusal(ticket: Ticket, action: str, flags: dict[str, Any], principal: str) -> str | None:
    return authority_refusal(ticket, command(ticket, action, flags, issued_by=principal))


def test_authority_follows_the_ticket_and_the_documented_extensions(ticket: Ticket) -> None:
    assert _refusal(ticket, "restore_route", {"ai.route.provider": "x"}, "maya.chen") is None
    assert _refusal(ticket, "disable_tools", {"ai.tools.enabled": False}, "maya.chen") is None
    assert "may not disable_tools" in (
        _refusal(ticket, "disable_tools", {"ai.tools.enabled": False}, "rollwatch-worker") or ""
    )
    # freeze_rollout may pin the percent, but cannot carry a route switch
    assert _refusal(ticket, "freeze_rollout", {"ai.rollout.percent": 5.0}, "luis.ortega") is None
    assert "may not set ai.route.provider" in (
        _refusal(ticket, "freeze_rollout", {"ai.route.provider": "x"}, "luis.ortega") or ""
    )
    # promote: the automation principal or a person granted freeze_rollout (issue 14), the percent only
    assert _refusal(ticket, "promote", {"ai.rollout.percent": 10.0}, "rollwatch-worker") is None
    assert _refusal(ticket, "promote", {"ai.rollout.percent": 10.0}, "luis.ortega") is None
    assert "only the automation principal" in (
        _refusal(ticket, "promote", {"ai.rollout.percent": 10.0}, "maya.chen") or ""
    )
    assert "only set ai.rollout.percent" in (
        _refusal(ticket, "promote", {"ai.tools.enabled": True}, "rollwatch-worker") or ""
    )
    # drill / rollback: any owner with a grant, for the flags that grant covers
    drilled = {"ai.route.provider": "x", "ai.action.mode": "draft"}
    assert _refusal(ticket, "drill", drilled, "ic-rotation") is None
    assert "may not set ai.action.mode" in (_refusal(ticket, "drill", drilled, "maya.chen") or "")
    assert "may issue no rollback action" in (
        _refusal(ticket, "rollback", {"ai.route.provider": "x"}, "support-lead") or ""
    )
    assert "holds no role" in (_refusal(ticket, "restore_route", {"ai.route.provider": "x"}, "mallory") or "")


def test_the_checker_refuses_expired_unknown_and_stale_tickets(ticket: Ticket) -> None:
    tickets = TicketBook()
    tickets.put(ticket)
    keys = Keyring([TrustedKey("k", "maya.chen", parse_verify_key("secret"), frozenset({"commands"}))])
    checker = CommandChecker(keys, tickets)
    key = parse_signing_key("k", "secret", "maya.chen")
    restore = {"ai.route.provider": ticket.control.route}

    def check(**options: Any) -> str | None:
        cmd = sign_command(command(ticket, "restore_route", restore, **options), key=key)
        refusal = checker.check(cmd, datetime.now(UTC))
        return refusal.code if refusal else None

    assert check() is None
    assert check(issued_at=datetime.now(UTC) - timedelta(hours=2), expires_in=timedelta(hours=1)) == "expired"
    assert check(expires_in=None) is None  # no expiry: only the replay memory protects it
    assert check(revision=2) == "stale_ticket"
    other = ticket.model_copy(update={"workflow": "other"})
    cmd = sign_command(command(other, "restore_route", restore), key=key)
    refusal = checker.check(cmd, datetime.now(UTC))
    assert refusal is not None and refusal.code == "unknown_ticket"
