"""Authority over effects and time, without a broker: what a command does must fit the ticket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollwatch.control.effects import DRILL_SEGMENT, effect_refusal, odd_value
from rollwatch.control.verify import CommandChecker, TicketBook
from rollwatch.tickets import Ticket, candidate_flags
from rollwatch.trust import Keyring
from tests.control.helpers import command, example_ticket

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _code(ticket: Ticket, action: str, flags: dict[str, Any], percent: float | None, **kw: Any) -> str | None:
    current: dict[str, object] = {str(name): value for name, value in candidate_flags(ticket).items()}
    if percent is not None:
        current["ai.rollout.percent"] = percent
    refusal = effect_refusal(ticket, command(ticket, action, flags, **kw), current)
    return refusal[0] if refusal else None


def test_a_reduction_only_lowers_and_a_promotion_takes_the_next_step(ticket: Ticket) -> None:
    # support-summary's plan: 5, 10, 25, 50, 100
    assert _code(ticket, "reduce_rollout", {"ai.rollout.percent": 1.0}, 5.0) is None
    assert _code(ticket, "reduce_rollout", {"ai.rollout.percent": 5.0}, 5.0) is None  # holding is not raising
    assert _code(ticket, "reduce_rollout", {"ai.rollout.percent": 90.0}, 1.0) == "raises_rollout"
    assert _code(ticket, "freeze_rollout", {"ai.rollout.percent": 25.0}, 10.0) == "raises_rollout"
    assert _code(ticket, "promote", {"ai.rollout.percent": 10.0}, 5.0) is None
    assert _code(ticket, "promote", {"ai.rollout.percent": 5.0}, 1.0) is None  # after a reduction, back on plan
    assert _code(ticket, "promote", {"ai.rollout.percent": 100.0}, 5.0) == "off_plan"
    assert _code(ticket, "promote", {"ai.rollout.percent": 25.0}, 5.0) == "off_plan"
    assert _code(ticket, "promote", {"ai.rollout.percent": 10.0}, None) is None  # the ticket's start percent (5)


def test_the_doubling_plan_doubles_from_the_percent_in_force() -> None:
    ticket = example_ticket("order-agent")
    assert ticket.canary.promotion.rule == "doubling"
    assert _code(ticket, "promote", {"ai.rollout.percent": 2.0}, 1.0) is None
    assert _code(ticket, "promote", {"ai.rollout.percent": 8.0}, 2.0) == "off_plan"


def test_routes_and_prompts_must_be_the_tickets_own(ticket: Ticket) -> None:
    order = example_ticket("order-agent")
    assert _code(ticket, "restore_route", {"ai.route.provider": ticket.control.route}, None) is None
    assert _code(ticket, "restore_route", {"ai.route.provider": ticket.candidate.route}, None) is None
    assert _code(ticket, "restore_route", {"ai.route.provider": order.control.route}, None) == "foreign_value"
    prompt = {"ai.prompt.version": order.control.prompt_version}
    assert _code(ticket, "restore_prompt", prompt, None) == "foreign_value"


def test_a_drill_restore_may_return_the_drill_segment_to_where_it_was(ticket: Ticket) -> None:
    back = {"ai.rollout.percent": 5.0}
    assert _code(ticket, "drill_restore", back, 1.0, segment=DRILL_SEGMENT) is None
    assert _code(ticket, "drill_restore", back, 1.0, segment="enterprise") == "raises_rollout"


@pytest.mark.parametrize(
    ("percent", "odd"), [(-0.0, "negative zero"), (1.005, "two decimals"), (12.5, None), (0.0, None), (33.33, None)]
)
def test_odd_numbers_are_refused(ticket: Ticket, percent: float, odd: str | None) -> None:
    problem = odd_value(command(ticket, "reduce_rollout", {"ai.rollout.percent": percent}))
    assert (problem is None) if odd is None else (odd in (problem or ""))


def test_issued_at_must_be_near_the_clock_and_near_when_it_was_sent(ticket: Ticket) -> None:
    tickets = TicketBook()
    tickets.put(ticket)
    checker = CommandChecker(Keyring(), tickets, max_skew_s=300, max_age_s=3900)
    flags = {"ai.route.provider": ticket.control.route}

    def code(issued: datetime, sent: datetime | None, expires_in: timedelta | None = timedelta(minutes=10)) -> str:
        cmd = command(ticket, "restore_route", flags, issued_at=issued, expires_in=expires_in)
        refusal = checker.check_time(cmd, NOW, sent)
        return refusal.code if refusal else "ok"

    assert code(NOW, NOW) == "ok"
    assert code(NOW - timedelta(minutes=50), NOW - timedelta(minutes=50), timedelta(hours=1)) == "ok"  # caught up late
    assert code(NOW - timedelta(days=2), None, None) == "clock_skew"
    assert code(NOW + timedelta(days=365), None, None) == "clock_skew"
    assert code(NOW + timedelta(minutes=4), None) == "ok"  # within the skew
    assert code(NOW - timedelta(minutes=10), NOW, timedelta(hours=1)) == "clock_skew"  # stamped 10 min before sent
    assert code(NOW, NOW, timedelta(days=30)) == "clock_skew"  # a command may not give itself a month
    assert code(NOW - timedelta(minutes=20), NOW - timedelta(minutes=20)) == "expired"
