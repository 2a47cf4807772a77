"""``rollwatch replay`` throughput on a 1e6-event file (target >= 100k events/s).

Writes a synthetic JSONL file of about a million events (calls, reviews, a few
complaints), replays it through the support-summary ticket, and prints the rate
and its ratio to the target.
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

TARGET = 100_000
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "support-summary.ticket.yaml"


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
        started = time.perf_counter()
        report = replay_file(ticket, path)
        elapsed = time.perf_counter() - started
    rate = report.events / elapsed
    print(
        f"replayed {report.events:,} events in {elapsed:.2f}s = {rate:,.0f} events/s; "
        f"ratio to target {rate / TARGET:.2f} (>= 1.00 meets {TARGET:,}/s); decisions: {len(report.timeline)}"
    )


if __name__ == "__main__":
    main()
