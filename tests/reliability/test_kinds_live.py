"""Each gate kind: a regression two hours into a release, caught by ``rollwatch replay`` and by a live worker alike.

Issue 13's acceptance asks, per gate kind, that a mid-release onset is caught within its
bound-based budget and that identical arms stay quiet, through both ``rollwatch replay``
and a live worker on the embedded broker, with the same command id. One workflow per
regression of :data:`rollwatch.synth.REGRESSIONS` plus one with identical arms, all under
the example ticket (renamed per workflow), 2 h 45 min of synthetic traffic each
(5 calls/s, 30% on the candidate), the regression starting at 2 h. The telemetry is
stamped so that it ends now: the whole release is a backlog.

The same messages (JSON arrays of events, keyed by workflow) are written to one JSONL
file per workflow, replayed by the CLI users run (``rollwatch replay --json``, a
subprocess), and produced to the broker for one worker process with the production
engine and the test's signing key. Asserted:

* replay: each regressed workflow is rolled back by a gate that reads the metric its
  regression moves, never before the onset, and for the guarded kinds (schema, reviews,
  safety, errors) within the budget ``tests/gates/test_detection.py`` uses: the
  information bound (:func:`rollwatch.gates.detector.info_bound`, from the traffic's rates
  and the ticket's null, not from the detector's output) scaled by what the ticket-wide
  guarantee costs, with half again and two minutes of judging grid. The identical-arms
  workflow gets no rollback or escalation.
* the worker publishes replay's first rollback of each regressed workflow (same command
  id, gate, action and flags), exactly the commands replay decides, each once, none for
  the identical arms, and each decided at the same event time on the same numbers.

Why 2 h 45 min: the latency gate keeps the ticket's ``sustained: 30m``, so its first rung
comes 35 minutes after the onset; the release ends before its second rung (50 minutes)
and well clear of any decision, so the worker's wall-clock judgments after the backlog
have nothing of their own to add.

Found here, not fixed (``rollwatch/gates`` and ``rollwatch/agents`` belong to others):

* **A worker behind judges at the wall clock between grid points.** After every batch the
  pipeline evaluates its engines at the wall clock, while a backlog's event time is far
  behind. Gates then see other moments: quality-floor's 60 min average fired 11 min early
  in event time (a window read at the wall clock would explain it, not traced); latency's
  ``sustained`` and the detectors too (latency never rolled back; safety 8 min and reviews
  22 min late); and decisions taken there carry no "decided on telemetry up to" note
  although their telemetry is 40 minutes old. Command ids still match, since an id names the gate, episode and rung, not
  the moment. ``test_an_engine_judged_at_the_wall_clock_after_every_batch_decides_as_replay``
  shows it deterministically (the worker's loop with the clock pinned, xfail strict); the
  live comparisons it makes random are marked non-strict until it is fixed.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from rollwatch.broker import EmbeddedBroker
from rollwatch.commands import RollbackCommand
from rollwatch.events import Event
from rollwatch.gates.detector import ODDS_RATIOS, info_bound, log_threshold
from rollwatch.gates.engine import Engine, EngineFactoryImpl
from rollwatch.kafka import ensure_topics
from rollwatch.ops.traffic import batches, publish_ticket
from rollwatch.replay import replay_events
from rollwatch.settings import Settings
from rollwatch.synth import REGRESSIONS, Regression, Traffic, generate
from rollwatch.tickets.load import load_ticket_bytes
from rollwatch.tickets.model import Ticket
from tests.agents.harness import ROOT, WorkerProcess, produce
from tests.reliability.backlog import Outcome, catch_up, messages_of, outcomes, published_commands
from tests.reliability.conftest import control_settings_for, production_worker

pytestmark = pytest.mark.integration

MINUTE: Final = 60_000
HOUR: Final = 60 * MINUTE
ONSET_MS: Final = 2 * HOUR
DURATION_MS: Final = ONSET_MS + 45 * MINUTE
SEED: Final = 17
BATCH: Final = 1000
"""Events per telemetry message (and JSONL line)."""
IDENTICAL: Final = "identical-arms"
EXAMPLE: Final = ROOT / "examples" / "support-summary.ticket.yaml"
ROLLWATCH: Final = Path(sys.executable).with_name("rollwatch")

READS: Final[dict[Regression, set[str]]] = {
    "schema": {"json-failures"},
    "latency": {"p95-latency", "p95-ceiling"},
    "cost": {"cost-per-task", "cost-per-request"},
    "reviews": {"review-rejections"},
    "safety": {"safety-blocks"},
    "complaints": {"ai-complaints"},
    "errors": {"error-rate"},
    "quality": {"quality-floor", "quality-drift"},
}
"""The example ticket's gates that read what each regression moves: the only ones allowed to fire."""

ALPHA: Final = 0.01
SEGMENTS: Final = 8
"""A ``by_segment`` gate's share of alpha is split over up to eight segments (as rollwatch.gates.detector states)."""


@dataclass(frozen=True, slots=True)
class Onset:
    """A guarded gate's Bernoulli stream after the onset: the rate, and what the ticket allows."""

    gate: str
    after: float
    null: float
    per_call: float
    """Observations per candidate call (reviews come for half the calls)."""


def onsets(base: dict[str, float], review_share: float) -> dict[Regression, Onset]:
    """Rates after the onset as ``rollwatch.synth`` injects them, against the example ticket's nulls."""
    return {
        "schema": Onset("json-failures", 0.06, 0.01, 1.0),  # rate_above 1%
        "reviews": Onset("review-rejections", base["reject"] + 0.15, base["reject"] + 0.05, review_share),
        "safety": Onset("safety-blocks", base["safety"] * 15, 2 * base["safety"], 1.0),  # 2x the control
        "errors": Onset("error-rate", 0.12, 0.05, 1.0),  # value 0.05, with an msprt guard here
    }


def ticket_yaml(workflow: str) -> bytes:
    """The example ticket on ``workflow`` and its own routes.

    Two changes, both so that every kind ends in a command the worker publishes: the
    error-rate gate gets an ``msprt`` guard (its change detector, as in test_detection),
    and automation may ``disable_segment`` (else a safety breach escalates to a person).
    """
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["workflow"], doc["ticket"] = workflow, f"REL-{workflow}"
    doc["control"]["route"] = doc["fallbacks"]["previous_route"]["route"] = f"{workflow}/stable"
    doc["candidate"]["route"] = f"{workflow}/candidate"
    for gate in doc["gates"]:
        if gate["name"] == "error-rate":
            gate["guard"] = {"method": "msprt", "alpha": ALPHA}
    doc["authority"]["automation"].append("disable_segment")
    return yaml.safe_dump(doc, sort_keys=False).encode()


def traffic(workflow: str, regression: Regression, end_ms: int) -> Traffic:
    return Traffic(
        workflow=workflow,
        control_route=f"{workflow}/stable",
        candidate_route=f"{workflow}/candidate",
        start_ms=end_ms - DURATION_MS,
        duration_ms=DURATION_MS,
        calls_per_second=5,
        candidate_share=0.3,
        regression=regression,
        onset_ms=ONSET_MS,
        seed=SEED if regression != "none" else SEED + 1,
    )


def budget_ms(ticket: Ticket, onset: Onset, made: Traffic) -> float:
    """Event time after the onset by which a guarded gate must have fired (test_detection's budget).

    The information bound at the ticket's alpha, times ``log A / log(1/alpha)`` (the cost of
    a guarantee for the whole ticket: alpha split over its guarded gates, and a segment
    gate's share over its segments, for a release of the canary's duration, plus at most
    ``log K`` for not knowing the effect's size), times 1.5 for
    noise and the control's confidence margin; plus two minutes of judging grid.
    """
    gate = ticket.gate(onset.gate)
    guarded = sum(1 for g in ticket.gates if getattr(g, "guard", None) is not None)
    shares = guarded * (SEGMENTS if gate.by_segment else 1)
    log_a = log_threshold(ALPHA, shares, int(ticket.canary.duration)) + math.log(len(ODDS_RATIOS))
    calls = info_bound(onset.after, onset.null, ALPHA) * log_a / math.log(1 / ALPHA) * 1.5
    per_second = made.calls_per_second * made.candidate_share * onset.per_call
    return calls / per_second * 1000 + 2 * MINUTE


async def replay_cli(ticket: Path, telemetry: Path, slots: asyncio.Semaphore) -> dict[str, Any]:
    """``rollwatch replay --json`` as a user runs it; its parsed output."""
    async with slots:  # two at a time: the worker catching up shares the machine
        return await _replay_cli(ticket, telemetry)


async def _replay_cli(ticket: Path, telemetry: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        str(ROLLWATCH),
        "replay",
        "--json",
        "--ticket",
        str(ticket),
        str(telemetry),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"rollwatch replay {telemetry.name} exited {proc.returncode}: {err.decode()}"
    report: dict[str, Any] = json.loads(out)
    return report


def replay_outcomes(workflow: str, report: dict[str, Any]) -> dict[str, Outcome]:
    """What a worker must publish for the replayed decisions: rollbacks and promotions."""
    return {
        e["command_id"]: (workflow, e["gate"], e["action"], e["flags"])
        for e in report["timeline"]
        if e["kind"] in ("rollback", "promote")
    }


@dataclass(frozen=True, slots=True)
class Run:
    """One worker and one replay per workflow over the same messages, and what each decided."""

    kinds: dict[str, Regression]
    made: dict[str, Traffic]
    tickets: dict[str, Ticket]
    reports: dict[str, dict[str, Any]]
    """``rollwatch replay --json`` per workflow."""
    commands: list[RollbackCommand]
    """The worker's commands, as published."""
    got: dict[str, Outcome]
    """The worker's commands by id."""
    expected: dict[str, Outcome]
    """The commands replay decides (rollbacks and promotions) by id."""
    caught_up_s: float


async def _run(settings: Settings, worker: WorkerProcess, folder: Path) -> Run:
    await ensure_topics(settings)
    end_ms = int(time.time() * 1000) - 5_000
    kinds: dict[str, Regression] = {f"kind-{r}": r for r in REGRESSIONS} | {IDENTICAL: "none"}
    made = {wf: traffic(wf, regression, end_ms) for wf, regression in kinds.items()}
    events: dict[str, list[Event]] = {wf: list(generate(t)) for wf, t in made.items()}
    messages = messages_of(events, size=BATCH)
    tickets: dict[str, Ticket] = {}
    files: dict[str, tuple[Path, Path]] = {}
    for wf in kinds:
        raw = ticket_yaml(wf)
        tickets[wf] = load_ticket_bytes(raw, wf)
        files[wf] = (folder / f"{wf}.ticket.yaml", folder / f"{wf}.jsonl")
        files[wf][0].write_bytes(raw)
        files[wf][1].write_bytes(b"".join(m + b"\n" for m in messages[wf]))  # one telemetry message a line
    # What `rollwatch ticket publish` does, for each workflow.
    await asyncio.gather(*(publish_ticket(settings, tickets[wf], files[wf][0].read_bytes()) for wf in kinds))
    await produce(settings, settings.topic_telemetry, ((wf.encode(), m) for wf, ms in messages.items() for m in ms))

    slots = asyncio.Semaphore(2)
    replays = asyncio.ensure_future(asyncio.gather(*(replay_cli(*files[wf], slots) for wf in kinds)))
    try:
        caught = await catch_up(worker, settings, events, timeout=120)  # while the replays run
        reports = dict(zip(kinds, await replays, strict=True))
    finally:
        if not replays.done():
            replays.cancel()
            await asyncio.gather(replays, return_exceptions=True)
    expected: dict[str, Outcome] = {}
    for wf, report in reports.items():
        assert report["events"] == len(events[wf]) and report["invalid"] == report["duplicates"] == 0, wf
        expected |= replay_outcomes(wf, report)
    commands = await published_commands(settings, expect=len(expected))
    worker.check_alive()
    return Run(kinds, made, tickets, reports, commands, outcomes(commands), expected, caught.seconds)


@pytest.fixture(scope="module")
def run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The whole scenario, once for the module's tests (one worker for all workflows keeps it fast)."""
    folder = tmp_path_factory.mktemp("kinds")
    settings = control_settings_for(broker.bootstrap_servers)
    worker = production_worker(settings, folder)
    try:
        yield asyncio.run(_run(settings, worker, folder))
    finally:
        worker.kill()
        print(f"----- worker (last lines) -----\n{worker.tail(80)}")


def fired(run: Run, workflow: str) -> list[dict[str, Any]]:
    """Replay's rollbacks and escalations for ``workflow``, in event time."""
    return [e for e in run.reports[workflow]["timeline"] if e["kind"] in ("rollback", "escalate")]


def onset_ms(run: Run, workflow: str) -> int:
    return run.made[workflow].start_ms + ONSET_MS


BEHIND_JUDGED_ON_THE_WALL_CLOCK: Final = (
    "found here: a worker catching up also judges at the wall clock after every batch, between event-time "
    "grid points: windows cut at the wall clock, sustained and detectors decide at other moments than replay, "
    "or never (deterministic: test_an_engine_judged_at_the_wall_clock_after_every_batch_decides_as_replay)"
)
MAY_DIFFER: Final = pytest.mark.xfail(strict=False, reason=BEHIND_JUDGED_ON_THE_WALL_CLOCK)
"""Live outcomes that depend on how batches and wall-clock judgments interleave, until that is fixed."""


def first_decision(run: Run, regression: Regression) -> dict[str, Any]:
    return fired(run, f"kind-{regression}")[0]


@pytest.mark.parametrize("regression", REGRESSIONS)
def test_replay_catches_an_onset_two_hours_in_by_a_gate_reading_it(run: Run, regression: Regression) -> None:
    wf = f"kind-{regression}"
    onset = onset_ms(run, wf)
    decisions = fired(run, wf)
    assert decisions, f"{wf}: no gate fired in the {(DURATION_MS - ONSET_MS) // MINUTE} min after the onset"
    when = [(e["kind"], e["gate"], (e["at_ms"] - onset) / MINUTE) for e in decisions]
    assert {e["gate"] for e in decisions} <= READS[regression], f"{wf}: a gate that does not read it fired: {when}"
    assert all(e["at_ms"] >= onset for e in decisions), f"{wf}: fired before the onset: {when}"
    assert decisions[0]["kind"] == "rollback", f"{wf}: {when}"


@pytest.mark.parametrize(
    "regression", [pytest.param(r, marks=MAY_DIFFER) if r in ("latency", "reviews") else r for r in REGRESSIONS]
)
def test_the_live_worker_publishes_replays_first_rollback(run: Run, regression: Regression) -> None:
    """Same command id, gate, action and flags as replay's first rollback of the regressed workflow."""
    first = first_decision(run, regression)
    wf = f"kind-{regression}"
    assert run.got.get(first["command_id"]) == (wf, first["gate"], first["action"], first["flags"]), (
        f"{wf}: replay {first['gate']} {first['action']} {first['command_id']}; worker {run.got}"
    )


GUARDED: Final[tuple[Regression, ...]] = ("schema", "reviews", "safety", "errors")


@pytest.mark.parametrize("regression", GUARDED)
def test_a_guarded_gate_catches_an_onset_two_hours_in_within_its_bound_budget(run: Run, regression: Regression) -> None:
    wf = f"kind-{regression}"
    made = run.made[wf]
    expected = onsets(Traffic().base, made.review_share)[regression]
    first = first_decision(run, regression)
    assert first["gate"] == expected.gate
    after_ms = first["at_ms"] - onset_ms(run, wf)
    allowed = budget_ms(run.tickets[wf], expected, made)
    assert 0 <= after_ms <= allowed, f"{wf}: +{after_ms / MINUTE:.1f} min, budget {allowed / MINUTE:.1f} min"


def test_identical_arms_get_no_rollback_from_replay_or_the_worker(run: Run) -> None:
    assert fired(run, IDENTICAL) == []
    assert not [o for o in run.got.values() if o[0] == IDENTICAL]


def test_the_worker_publishes_no_command_replay_does_not_decide(run: Run) -> None:
    """Each command once, and each one replay decides for that workflow (same id, gate, action, flags)."""
    extra = {k: v for k, v in run.got.items() if run.expected.get(k) != v}
    assert not extra, f"worker only: {extra}"


@MAY_DIFFER
def test_the_worker_publishes_exactly_what_replay_decides(run: Run) -> None:
    """Every command replay decides for any of the workflows, each once; nothing of the worker's own."""
    assert run.got == run.expected, f"worker {run.got} != replay {run.expected} (caught up in {run.caught_up_s:.1f}s)"


DECIDED: Final = re.compile(r"decided on telemetry up to (\S+?),")


@MAY_DIFFER
def test_the_worker_decided_at_the_same_event_time_on_the_same_evidence(run: Run) -> None:
    """Same id is not enough (an id names the gate's episode and rung, not when): the moment and the numbers.

    Every decision here is minutes older than the worker's clock when it is issued, so its
    command says the event time it was decided at (one that does not was decided at the
    wall clock, on no telemetry of that moment).
    """
    replayed = {e["command_id"]: e for report in run.reports.values() for e in report["timeline"]}
    assert run.commands
    differ = []
    for command in run.commands:
        decision = replayed[command.command_id]
        reason, result = command.reason, decision["result"]
        found = DECIDED.search(reason.detail or "")
        at_ms = round(datetime.fromisoformat(found.group(1)).timestamp() * 1000) if found else None
        worker = (at_ms, reason.metric, reason.observed, reason.threshold, reason.control, dict(reason.samples))
        replay = (decision["at_ms"], *(result[k] for k in ("metric", "observed", "threshold", "control", "samples")))
        if worker != replay:
            differ.append(
                f"{command.workflow} {reason.gate} {command.action}: worker {worker} ({reason.detail}) "
                f"issued {command.issued_at}, replay {replay}"
            )
    assert not differ, "\n".join(differ)


WALL_MS: Final = 1_796_524_000_000
"""A fixed wall clock for the engine-level test (its minute phase moves where decisions land)."""


@pytest.mark.parametrize(
    "regression",
    [
        pytest.param(r, marks=pytest.mark.xfail(strict=True, reason=BEHIND_JUDGED_ON_THE_WALL_CLOCK))
        for r in REGRESSIONS
        if r != "errors"
    ]
    + ["errors", "none"],
)
def test_an_engine_judged_at_the_wall_clock_after_every_batch_decides_as_replay(regression: Regression) -> None:
    """The worker's loop without the worker: fold a batch, judge at the wall clock, for the whole backlog.

    What the worker's pipeline does for a workflow with traffic (``runtime.judge(touched,
    wall_ms())`` after each batch), with the engine its factory builds and the clock pinned,
    and the telemetry pinned (``WALL_MS``), so the interleaving and the outcome are fixed. Replay is the reference:
    every command id it decides, decided at the same event time, and no other.
    """
    wf = f"kind-{regression}" if regression != "none" else IDENTICAL
    wall_ms = WALL_MS
    ticket = load_ticket_bytes(ticket_yaml(wf), wf)
    events = list(generate(traffic(wf, regression, wall_ms - 5_000)))
    replayed = {
        e.decision.command_id: e.at_ms
        for e in replay_events(ticket, [events]).timeline
        if e.decision.kind in ("rollback", "promote")
    }
    engine = Engine(wf, judge_every_ms=EngineFactoryImpl().judge_every_ms, clock=lambda: wall_ms / 1000)
    engine.install(ticket)
    decided: dict[str, int] = {}
    seen: dict[str, str] = {}
    onset = wall_ms - 5_000 - DURATION_MS + ONSET_MS
    for batch in batches(iter(events), 250):
        engine.apply(batch)
        emitted = {e.command.command_id for e in engine.evaluate(wall_ms)}
        for d in engine.last_decisions:
            if d.command_id in emitted:
                decided[d.command_id] = d.at_ms
                on = "at the wall clock" if d.at_ms == wall_ms else f"at +{(d.at_ms - onset) / MINUTE:.1f} min"
                seen[d.command_id] = f"{d.gate} {on}, telemetry up to +{(batch[-1].ts_ms - onset) / MINUTE:.1f} min"
    differ = {k: seen[k] for k in decided if decided[k] != replayed.get(k)}
    assert decided == replayed, (
        f"replay (minutes after the onset): { {k: (v - onset) / MINUTE for k, v in replayed.items()} }; "
        f"missing {set(replayed) - set(decided)}; other moments or extra: {differ}"
    )
