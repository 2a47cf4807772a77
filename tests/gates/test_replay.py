"""Replay of JSONL files: single events and batch lines, bad lines counted with their line
numbers, and the CLI's timeline and JSON."""

from __future__ import annotations

import gc
from pathlib import Path

import orjson
from typer.testing import CliRunner

from rollwatch.cli import app
from rollwatch.events import event_to_dict
from rollwatch.replay import replay_file
from rollwatch.synth import Traffic, generate
from rollwatch.tickets.model import Ticket
from tests.gates.conftest import EXAMPLE

HOUR = 3_600_000


def write(path: Path, *, batched: bool, bad_lines: bool) -> int:
    traffic = Traffic(
        regression="schema", seed=4, duration_ms=2 * HOUR, onset_ms=HOUR, calls_per_second=5, candidate_share=0.3
    )
    events = [event_to_dict(e) for e in generate(traffic)]
    with path.open("wb") as out:
        step = 7 if batched else 1
        for i in range(0, len(events), step):
            chunk = events[i : i + step]
            out.write(orjson.dumps(chunk if batched else chunk[0]) + b"\n")
            if bad_lines and i in (70, 700):
                out.write(b'{"type": "call", "event_id": "broken"}\n')
    return len(events)


def test_replay_catches_the_regression_in_either_line_form(ticket: Ticket, tmp_path: Path) -> None:
    plain, batched = tmp_path / "plain.jsonl", tmp_path / "batched.jsonl"
    n = write(plain, batched=False, bad_lines=True)
    write(batched, batched=True, bad_lines=False)
    a, b = replay_file(ticket, plain), replay_file(ticket, batched)
    assert a.events == b.events == n
    assert a.invalid == 2 and b.invalid == 0
    assert "plain.jsonl:72: workflow: is required" in a.invalid_samples[0]
    decisions_a = [(e.decision.gate, e.decision.command_id) for e in a.timeline]
    decisions_b = [(e.decision.gate, e.decision.command_id) for e in b.timeline]
    assert decisions_a == decisions_b and ("json-failures", decisions_a[0][1]) in decisions_a


def test_replay_gives_the_garbage_collector_back_as_it_found_it(ticket: Ticket, tmp_path: Path) -> None:
    # Replay quiets the collector while it runs (allocation-heavy); the caller's settings return.
    path = tmp_path / "plain.jsonl"
    write(path, batched=False, bad_lines=False)
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        gc.unfreeze()  # whatever an earlier test froze: the replay must leave nothing frozen behind
        assert replay_file(ticket, path).timeline
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.get_freeze_count() == 0
    finally:
        gc.set_threshold(*before)


def test_replay_cli_prints_a_timeline_and_json(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write(path, batched=False, bad_lines=False)
    runner = CliRunner()
    text = runner.invoke(app, ["replay", "--ticket", str(EXAMPLE), str(path)])
    assert text.exit_code == 0, text.output
    assert "ROLLBACK json-failures" in text.output and "restore_route_and_prompt" in text.output
    assert "events/s" in text.output
    as_json = runner.invoke(app, ["replay", "--ticket", str(EXAMPLE), "--json", str(path)])
    data = orjson.loads(as_json.output)
    assert data["timeline"][0]["gate"] == "json-failures"
    assert data["timeline"][0]["result"]["state"] == "breached"
    evidence = data["timeline"][0]["result"]["evidence"]
    assert evidence["confirmed"] is True and evidence["log_e"] >= evidence["log_e_needed"] > 0
    assert "evidence " in text.output and "(log e)" in text.output
    assert {g["gate"] for g in data["final"]} >= {"json-failures", "p95-latency"}


def test_control_only_history_costs_no_judgments(ticket: Ticket) -> None:
    """A day of sparse control history before the release: judged from the candidate's first event on."""
    from rollwatch.replay import replay_events

    release = Traffic(
        regression="schema", seed=5, duration_ms=2 * HOUR, onset_ms=HOUR, calls_per_second=5, candidate_share=0.3
    )
    history = Traffic(
        seed=6, start_ms=release.start_ms - 24 * HOUR, duration_ms=24 * HOUR, calls_per_second=1 / 60,
        candidate_share=0.0,
    )  # fmt: skip
    events = [*generate(history), *generate(release)]
    first_candidate = min(e.ts_ms for e in events if e.route == release.candidate_route)
    report = replay_events(ticket, [events], keep_samples=True)
    judged = [at for at, _ in report.samples]
    # Every judgment comes after the candidate's first event; the day before costs none (it would cost 1,440).
    assert judged and min(judged) > first_candidate
    assert len(judged) <= 2 * 60 + 2
    assert [(e.decision.kind, e.decision.gate) for e in report.timeline][:1] == [("rollback", "json-failures")]
    assert report.timeline[0].at_ms > release.start_ms + release.onset_ms
