"""A worker that starts ten minutes behind catches up and decides what replay decides.

The broker holds ten minutes of telemetry, stamped from ten minutes ago up to now, before
any worker runs; the production engine (gates, judge, signing) is then started as a real
process and reads the whole backlog. Two workflows run the support-summary ticket:

* ``support-summary``: the candidate fails schema validation from minute 3 on and never
  recovers, so ``json-failures`` breaches midway through the backlog and stays breached;
* ``support-summary-blip``: the candidate fails from minute 2 to minute 5 only, so its
  breach has recovered minutes before the backlog ends.

Replay judges every minute of event time, so it rolls the blip back while it lasts (as
a live worker would have): a breach that healed before the worker caught up is still
acted on, and the worker must agree. Until the engine judged on the event-time grid
during ``apply`` it did not: it folded the backlog in one batch, judged once on the wall
clock, saw a healthy gate and said nothing.

Asserted: the worker catches up (every event applied once, no duplicate, consumer lag
0); its commands are exactly the rollbacks an offline replay of the same events under the
same tickets decides (``rollwatch.replay.replay_events``): same command ids, gates,
actions and flags, each once; they are issued on the worker's clock (almost their whole
TTL left, though the telemetry behind them is minutes old) and a flag store started
afterwards applies them. A second test drives the worker's engine alone with a backlog
older than the command TTL, where commands stamped with their decision's event time would
be refused as expired.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rollwatch.commands import RollbackCommand
from rollwatch.control.verify import CommandChecker, TicketBook
from rollwatch.events import Event
from rollwatch.flagstore.service import FlagStore
from rollwatch.gates.engine import COMMAND_TTL_MS, Engine, EngineFactoryImpl
from rollwatch.ops.traffic import for_ticket, publish_ticket
from rollwatch.replay import replay_events
from rollwatch.settings import Settings
from rollwatch.synth import Traffic, generate
from rollwatch.tickets import Ticket, ticket_to_json
from rollwatch.trust import Keyring
from tests.agents.harness import WorkerProcess, produce
from tests.control.helpers import AckReader, example_ticket
from tests.reliability.backlog import Outcome, catch_up, messages_of, outcome, outcomes, published_commands

pytestmark = pytest.mark.integration

BEHIND_MS = 10 * 60_000
BLIP = "support-summary-blip"


def tickets() -> dict[str, Ticket]:
    """The example ticket, and the same gates for a second workflow."""
    base = example_ticket()
    blip = base.model_copy(update={"workflow": BLIP, "ticket": "REL-2042"})
    return {base.workflow: base, BLIP: blip}


def _traffic(ticket: Ticket, start_ms: int, duration_ms: int, onset_ms: int, seed: int) -> Traffic:
    # No schema failure at all outside the regression: the control's noise alone can hold
    # json-failures back ("the control fails too"), which would make the scenario a coin toss.
    clean = Traffic().base | {"schema": 0.0}
    made = Traffic(start_ms=start_ms, duration_ms=duration_ms, calls_per_second=8, candidate_share=0.3, base=clean)
    return for_ticket(replace(made, regression="schema", onset_ms=onset_ms, seed=seed), ticket)


def steady(ticket: Ticket, now_ms: int, behind_ms: int = BEHIND_MS) -> list[Event]:
    """Failing from minute 3 to the end, which is ``now_ms``."""
    return list(generate(_traffic(ticket, now_ms - behind_ms, behind_ms, 3 * 60_000, seed=21)))


def blip(ticket: Ticket, now_ms: int, behind_ms: int = BEHIND_MS) -> list[Event]:
    """Failing from minute 2 to minute 5, then clean to the end (another seed: other event ids)."""
    start = now_ms - behind_ms
    failing = _traffic(ticket, start, behind_ms, 2 * 60_000, seed=12)
    healed = replace(
        failing, regression="none", seed=23, start_ms=start + 5 * 60_000, duration_ms=behind_ms - 5 * 60_000
    )
    return [e for e in generate(failing) if e.ts_ms < healed.start_ms] + list(generate(healed))


def replayed(ticket: dict[str, Ticket], events: dict[str, list[Event]]) -> dict[str, Outcome]:
    """What the recorded telemetry says offline, under the same tickets: command id -> outcome."""
    expected: dict[str, Outcome] = {}
    for wf, evs in events.items():
        report = replay_events(ticket[wf], [evs])
        assert report.events == len(evs) and report.duplicates == 0 and report.late == 0
        finally_breached = {g.gate for g in report.final if g.breached}
        for entry in report.timeline:
            if entry.decision.kind in ("rollback", "promote"):
                d = entry.decision
                expected[d.command_id] = (wf, d.gate, d.action, {str(k): v for k, v in d.flags.items()})
        if wf == BLIP:
            assert "json-failures" not in finally_breached, "the blip had not recovered by the end"
    return expected


async def test_a_worker_ten_minutes_behind_catches_up_and_decides_what_replay_decides(
    live_settings: Settings, live_worker: WorkerProcess
) -> None:
    settings, worker = live_settings, live_worker
    ticket = tickets()
    for each in ticket.values():
        await publish_ticket(settings, each, ticket_to_json(each))  # what `rollwatch ticket publish` does
    now_ms = int(time.time() * 1000)
    events = {"support-summary": steady(ticket["support-summary"], now_ms), BLIP: blip(ticket[BLIP], now_ms)}
    messages = [(wf.encode(), m) for wf, ms in messages_of(events).items() for m in ms]
    await produce(settings, settings.topic_telemetry, messages)

    expected = replayed(ticket, events)
    # The scenario is what it claims to be: both workflows breach json-failures in replay,
    # the blip only while its regression lasts (its gate is healthy at the end).
    assert sorted((wf, gate) for wf, gate, _, _ in expected.values()) == [
        ("support-summary", "json-failures"),
        (BLIP, "json-failures"),
    ]

    caught = await catch_up(worker, settings, events)
    commands = await published_commands(settings, expect=len(expected))
    got = outcomes(commands)
    assert got == expected, f"worker {got} != replay {expected} (caught up in {caught.seconds:.1f}s)"

    # Issued on the worker's clock, not the telemetry's: they arrive with most of their TTL left.
    received = datetime.now(UTC)
    for command in commands:
        assert isinstance(command, RollbackCommand) and command.signature is not None
        assert command.expires_at is not None
        left_ms = (command.expires_at - received).total_seconds() * 1000
        assert left_ms > COMMAND_TTL_MS - 5 * 60_000, (command.command_id, command.issued_at, command.expires_at)

    store = FlagStore(settings)
    await store.start()
    try:
        async with AckReader(settings) as acks:
            for command in commands:
                ack = await acks.wait_for(command.command_id, "flagstore", 20)
                assert ack.status == "applied", (command.command_id, ack.detail)
        for command in commands:
            effective = store.effective(command.workflow, command.segment) or {}
            for flag, value in command.flags.items():
                assert effective.get(flag) == value, (command.workflow, flag, effective)
    finally:
        await store.stop()
    worker.check_alive()


def test_an_engine_fed_an_old_backlog_at_once_decides_as_replay_and_issues_on_the_clock() -> None:
    """The worker's engine without the worker: one ``apply`` for the whole backlog, as a far-behind batch.

    Sixty-five minutes behind, the blip's rollback is decided on telemetry about an hour
    old: stamped with that event time it would be expired (TTL one hour) before anyone read it.
    """
    ticket = tickets()[BLIP]
    wall_ms = int(time.time() * 1000)
    events = blip(ticket, wall_ms, behind_ms=65 * 60_000)
    expected = replayed({BLIP: ticket}, {BLIP: events})
    assert [(wf, gate) for wf, gate, _, _ in expected.values()] == [(BLIP, "json-failures")]
    checker = CommandChecker(Keyring(), TicketBook())
    checker.tickets.put(ticket)
    wall = datetime.fromtimestamp(wall_ms / 1000, UTC)
    # What EngineFactoryImpl builds for the worker, with the clock pinned.
    engine = Engine(BLIP, judge_every_ms=EngineFactoryImpl().judge_every_ms, clock=lambda: wall_ms / 1000)
    engine.install(ticket)
    engine.apply(events)
    got: dict[str, Outcome] = {}
    for emission in engine.evaluate(wall_ms):
        command = emission.command
        got[command.command_id] = outcome(command)
        assert command.issued_at == wall
        assert command.expires_at == wall + timedelta(milliseconds=COMMAND_TTL_MS)
        assert command.reason.detail is not None and "decided on telemetry up to" in command.reason.detail
        assert emission.breach_ts_ms < wall_ms - COMMAND_TTL_MS  # the evidence is over an hour old
        assert checker.check_policy(command, wall) is None  # not expired, authorized, ticket in force
    assert got == expected
