"""``rollwatch replay`` throughput on a 1e6-event file and on a sparse week (target >= 100k events/s each).

Writes a synthetic JSONL file of about a million events (calls, reviews, a few
complaints), replays it through the support-summary ticket, and prints the rate
and its ratio to the target. Then the realistic shape of a recorded file: seven days of
sparse control history (a call a minute) before a 3-hour release at 6 calls/s (~110k
events), where judging every minute of event time would cost more than the events.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import orjson

from rollwatch.events import event_to_dict
from rollwatch.replay import replay_file
from rollwatch.synth import Traffic, generate
from rollwatch.tickets.load import load_ticket
from rollwatch.tickets.model import Ticket

TARGET = 100_000
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "support-summary.ticket.yaml"


def sparse_week(path: Path) -> None:
    """A call a minute on the control for 7 days, then a 3-hour release at 6 calls/s with a schema regression."""
    release_ms = 1_763_900_000_000
    week = Traffic(
        start_ms=release_ms - 7 * 86_400_000, duration_ms=7 * 86_400_000, calls_per_second=1 / 60,
        candidate_share=0.0, seed=11,
    )  # fmt: skip
    release = Traffic(
        start_ms=release_ms, duration_ms=3 * 3_600_000, calls_per_second=6, candidate_share=0.2,
        regression="schema", onset_ms=3_600_000, seed=12,
    )  # fmt: skip
    with path.open("wb") as out:
        for traffic in (week, release):
            for event in generate(traffic):
                out.write(orjson.dumps(event_to_dict(event)) + b"\n")


def measure(ticket: Ticket, path: Path, label: str) -> None:
    """Wall-clock rate, and the rate per CPU-second of this process (what a shared machine cannot skew)."""
    started, cpu = time.perf_counter(), time.process_time()
    report = replay_file(ticket, path)
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    rate, cpu_rate = report.events / elapsed, report.events / max(used, 1e-9)
    print(
        f"{label}: replayed {report.events:,} events in {elapsed:.2f}s = {rate:,.0f} events/s "
        f"({cpu_rate:,.0f} per CPU-second); ratio to target {rate / TARGET:.2f} wall, {cpu_rate / TARGET:.2f} CPU "
        f"(>= 1.00 meets {TARGET:,}/s); decisions: {len(report.timeline)}"
    )


def main() -> None:
    events = int(float(sys.argv[1])) if len(sys.argv) > 1 else 1_000_000
    ticket = load_ticket(EXAMPLE)
    seconds = int(events / 1.5 / 40 * 1000)  # 40 calls/s, ~1.5 events per call
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "telemetry.jsonl"
        with path.open("wb") as out:
            for event in generate(
                Traffic(regression="schema", duration_ms=seconds, onset_ms=seconds // 2, calls_per_second=40, seed=7)
            ):
                out.write(orjson.dumps(event_to_dict(event)) + b"\n")
        measure(ticket, path, "dense file")
        sparse = Path(tmp) / "sparse-week.jsonl"
        sparse_week(sparse)
        measure(ticket, sparse, "a sparse week, then a release")


if __name__ == "__main__":
    main()
