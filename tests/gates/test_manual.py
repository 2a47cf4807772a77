"""People's commands and the judge: abort stops everything, pause holds promotion, approvals settle escalations.

Expected behaviour comes from issue 14 as written; the gate results are hand-made (as in
``test_judge.py``), the commands are the ones ``rollwatch abort|pause|resume|approve`` build.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from rollwatch.commands import RollbackCommand, encode_command
from rollwatch.control.verify import CommandChecker, TicketBook
from rollwatch.gates.engine import Engine
from rollwatch.gates.judge import JudgeMemory, judge
from rollwatch.gates.manual import admit, apply_manual, escalation_views
from rollwatch.ops.manual import approval_command, approval_id, manual_command
from rollwatch.signing import sign_command
from rollwatch.tickets.model import Ticket
from rollwatch.trust import generate_ed25519, parse_signing_key
from rollwatch.trust.keyring import load_keyring
from tests.control.helpers import by, write_keyring
from tests.gates.test_judge import MIN, result, single_gate

NOW = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


def person(ticket: Ticket, verb: str, who: str = "ic-rotation", percent: float = 5.0) -> RollbackCommand:
    current = {"ai.rollout.percent": percent}
    return manual_command(verb, ticket, current, issued_by=who, reason="incident 4411", issued_at=NOW)  # type: ignore[arg-type]


def test_abort_stops_rollbacks_and_promotions_until_resume(ticket: Ticket) -> None:
    one = single_gate(ticket, "json-failures")
    memory = JudgeMemory()
    judge(one, [], memory, 0)  # the ticket's revision is in memory
    apply_manual(memory, person(one, "abort"))
    assert memory.aborted and memory.rollout_percent == 0
    promo = result("promotion", "healthy")
    for t in range(0, 600 * MIN, 30 * MIN):
        assert judge(one, [result("json-failures")], memory, t, promo) == []  # breached: still nothing
    apply_manual(memory, person(one, "resume", percent=5.0))
    assert not memory.aborted and memory.rollout_percent == 5.0
    decided = judge(one, [result("json-failures")], memory, 601 * MIN, promo)
    assert [d.kind for d in decided] == ["rollback"]


def test_pause_holds_promotion_but_not_rollbacks(ticket: Ticket) -> None:
    one = single_gate(ticket, "json-failures")
    memory = JudgeMemory()
    healthy = [result("json-failures", "healthy")]
    promo = result("promotion", "healthy")
    judge(one, healthy, memory, 0, promo)
    apply_manual(memory, person(one, "pause", "luis.ortega"))
    for t in range(0, 300 * MIN, 30 * MIN):
        assert judge(one, healthy, memory, t, promo) == []
    apply_manual(memory, person(one, "resume", "luis.ortega"))
    # A fresh hold after the resume, then the plan's next step.
    assert judge(one, healthy, memory, 301 * MIN, promo) == []
    promoted = judge(one, healthy, memory, 361 * MIN, promo)
    assert [(d.kind, dict(d.flags)) for d in promoted] == [("promote", {"ai.rollout.percent": 10.0})]
    # Paused again: a breach still rolls back.
    apply_manual(memory, person(one, "pause", "luis.ortega", 10.0))
    assert [d.kind for d in judge(one, [result("json-failures")], memory, 400 * MIN, promo)] == ["rollback"]


def test_a_command_taken_once_is_not_taken_again_after_a_re_read(ticket: Ticket) -> None:
    memory = JudgeMemory()
    judge(ticket, [], memory, 0)
    resume = person(ticket, "resume", percent=5.0)
    apply_manual(memory, resume)
    memory.rollout_percent = 25.0  # the judge promoted since
    assert "already taken" in apply_manual(memory, resume)
    assert memory.rollout_percent == 25.0


def test_an_escalation_waits_with_its_evidence_and_an_approval_settles_it_once(ticket: Ticket) -> None:
    engine = Engine("support-summary")
    engine.install(ticket)
    # safety-blocks wants disable_segment, which the automation may not do (the risk owner and IC may).
    judge(ticket, [], engine.memory, 0)
    decided = judge(ticket, [result("safety-blocks")], engine.memory, MIN)
    assert [d.kind for d in decided] == ["escalate"]
    escalated = decided[0]
    engine.memory.escalations[escalated.command_id] = engine.command(escalated).model_dump(mode="json")
    [view] = escalation_views(ticket, engine.memory)
    assert view["command_id"] == escalated.command_id
    assert view["may_approve"] == ["priya.natarajan", "ic-rotation"]
    assert view["approve"] == (f'rollwatch approve {escalated.command_id} --workflow support-summary --reason "..."')
    approval = approval_command(
        ticket, view["decision"], issued_by="priya.natarajan", reason="confirmed", issued_at=NOW
    )
    assert approval.command_id == approval_id(escalated.command_id)
    assert approval.approves == escalated.command_id and approval.action == "disable_segment"
    assert approval.flags == view["decision"]["flags"]
    assert approval.evidence.model_dump(mode="json") == view["decision"]["evidence"]
    assert approval.reason.gate == "safety-blocks" and approval.reason.detail is not None
    assert approval.reason.detail.startswith("approved by priya.natarajan: confirmed")
    engine.manual(approval)
    assert engine.memory.escalations == {} and engine.memory.rolled_back
    assert engine.status()["escalations"] == []
    restored = Engine.from_bytes(engine.to_bytes())
    assert restored.memory == engine.memory


def test_the_worker_believes_only_commands_every_consumer_would_apply(
    ticket: Ticket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forged, expired, unknown-key and unauthorized aborts change nothing in the worker either."""
    monkeypatch.setenv("RW_TEST_MANUAL_OWN", "own-secret")
    keyring = load_keyring(write_keyring(tmp_path / "keyring.json", "own", "RW_TEST_MANUAL_OWN"))
    checker = CommandChecker(keyring, TicketBook())
    now = datetime.now(UTC)

    def abort(who: str = "ic-rotation", **extra: Any) -> RollbackCommand:
        extra.setdefault("issued_at", now)
        return manual_command("abort", ticket, {}, issued_by=who, reason="r", **extra)

    good = by("ic-rotation", abort(expires_in=timedelta(minutes=5)))
    tampered = orjson.loads(encode_command(good))
    tampered["flags"]["ai.rollout.percent"] = 100.0
    expired = by("ic-rotation", abort(issued_at=now - timedelta(minutes=5), expires_in=timedelta(minutes=1)))
    private, _ = generate_ed25519()
    stranger = sign_command(abort(), key=parse_signing_key("ic-2", private, "ic-rotation"))
    unauthorized = by("priya.natarajan", abort("priya.natarajan"))
    cases = {
        "bad_signature": (RollbackCommand.model_validate(tampered, strict=False), orjson.dumps(tampered)),
        "expired": (expired, encode_command(expired)),
        "unknown_key": (stranger, encode_command(stranger)),
        "unauthorized": (unauthorized, encode_command(unauthorized)),
    }
    for code, (cmd, raw) in cases.items():
        refusal = admit(checker, ticket, cmd, raw, now, None)
        assert refusal is not None and refusal.code == code, (code, refusal)
    assert admit(checker, ticket, good, encode_command(good), now, None) is None
