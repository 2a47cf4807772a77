"""Load on the pure core: many workflows x two arms through ``Engine`` instances.

Issue 8 asks for 10,000 workflows with two arms each and 1e7 events with memory
bounded and no growing lag. This benchmark runs the worker's per-workflow core (the
same ``Engine`` the worker and replay use, with the example ticket installed per
workflow) for a wall-clock budget and prints only what it measured:

* engines built: RSS growth per workflow (and per route: two arms per workflow);
* the event run: events/s overall and per quarter of the run (a rate that falls as
  state grows would be the in-process form of growing lag), RSS at each quarter (the
  windows are bounded, so memory must level off once they fill), judging after every
  batch as the worker does;
* checkpoints: serialized bytes per engine (what the changelog holds per workflow).

Events arrive as the worker sees them: batches of ``--batch`` events per workflow, the
workflows in round-robin, 5% of calls on the candidate arm, event time advancing
``--step-s`` (60 s) per batch per workflow so the 30-minute windows fill and roll
within the run (memory can only be seen to level off once they do). No Kafka here: the broker
path is ``bench/bench_worker.py``. Nothing is extrapolated.

    .venv/bin/python bench/bench_load.py [--workflows 10000] [--seconds 120] [--batch 100] [--step-s 60]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rollwatch.events import CallEvent  # noqa: E402
from rollwatch.gates.engine import Engine  # noqa: E402
from rollwatch.tickets import load_ticket  # noqa: E402

EXAMPLE = ROOT / "examples" / "support-summary.ticket.yaml"
START_MS = 1_763_900_000_000


def rss_bytes() -> int:
    """Resident set size now, from /proc (Linux); 0 where that is not available."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def batch_for(workflow: str, control: str, candidate: str, seq: int, size: int, ts_ms: int) -> list[CallEvent]:
    """``size`` calls of one workflow at ``ts_ms``: 5% candidate, a little schema noise, some tasks."""
    out = []
    for j in range(size):
        i = seq + j
        on_candidate = i % 20 == 0
        out.append(
            CallEvent(
                event_id=f"{workflow}-{i}",
                ts_ms=ts_ms + j,
                workflow=workflow,
                route=candidate if on_candidate else control,
                arm="candidate" if on_candidate else "control",
                latency_ms=300.0 + (i * 7919) % 900,
                status="ok" if i % 50 else "error",
                schema_valid=i % 211 != 0,
                safety_blocked=False,
                task_success=True if i % 3 == 0 else None,
                cost_usd=0.0012 + (i % 7) / 10_000,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=120.0, help="wall-clock budget of the event run")
    parser.add_argument("--batch", type=int, default=100, help="events per workflow per apply (one message)")
    parser.add_argument("--step-s", type=float, default=60.0, help="event time between a workflow's batches")
    args = parser.parse_args()

    base = load_ticket(EXAMPLE)
    control, candidate = base.control.route, base.candidate.route
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    engines: list[Engine] = []
    for w in range(args.workflows):
        name = f"wf-{w:05d}"
        engine = Engine(name)
        engine.install(base.model_copy(update={"workflow": name}))
        engines.append(engine)
    built_s = time.perf_counter() - t0
    gc.collect()
    rss_built = rss_bytes()
    per_wf_empty = (rss_built - rss0) / args.workflows
    print(f"workflows: {args.workflows} (2 arms each), built in {built_s:.1f}s")
    print(
        f"RSS: {rss0 / 2**20:.0f} MiB before, {rss_built / 2**20:.0f} MiB built: {per_wf_empty / 1024:.1f} KiB/workflow"
    )

    # Events are built per batch (ids must be unique) outside the timed calls; their
    # construction cost is measured separately and reported.
    t = time.perf_counter()
    sample = [batch_for("wf-x", control, candidate, k * args.batch, args.batch, START_MS) for k in range(50)]
    build_per_event = (time.perf_counter() - t) / (50 * args.batch)
    del sample

    events = 0
    apply_s = judge_s = 0.0
    commands = 0
    quarters: list[tuple[int, float, float, int]] = []  # (events, apply+judge seconds, wall, rss)
    budget = args.seconds
    started = time.perf_counter()
    next_quarter = started + budget / 4
    q_events, q_work, q_start = 0, 0.0, started
    rnd = 0
    while time.perf_counter() - started < budget:
        ts = START_MS + int(rnd * args.step_s * 1000)
        for engine in engines:
            wf = engine.workflow
            batch = batch_for(wf, control, candidate, rnd * args.batch, args.batch, ts)
            a = time.perf_counter()
            engine.apply(batch)
            b = time.perf_counter()
            commands += len(engine.evaluate(ts + args.batch))
            c = time.perf_counter()
            apply_s += b - a
            judge_s += c - b
            q_work += c - a
            events += args.batch
            q_events += args.batch
            if c >= next_quarter:
                quarters.append((q_events, q_work, c - q_start, rss_bytes()))
                q_events, q_work, q_start = 0, 0.0, c
                next_quarter = c + budget / 4
            if c - started >= budget:
                break
        rnd += 1
    wall = time.perf_counter() - started
    if q_events:
        quarters.append((q_events, q_work, time.perf_counter() - q_start, rss_bytes()))
    gc.collect()
    rss_end = rss_bytes()

    print(
        f"events: {events:,} in {wall:.1f}s wall over {rnd + 1} round(s) of {args.workflows} workflows "
        f"x {args.batch}-event batches, {args.step_s:.0f}s of event time apart; commands emitted: {commands}"
    )
    print(
        f"core rate (apply + judge after every batch): {events / (apply_s + judge_s):,.0f} events/s "
        f"(apply {events / apply_s:,.0f} events/s; judge {judge_s / max(1, events // args.batch) * 1e6:.0f} us/batch); "
        f"building the events cost a further {build_per_event * 1e6:.1f} us/event"
    )
    for k, (n, work, qwall, rss) in enumerate(quarters, 1):
        print(
            f"  quarter {k}: {n:,} events, {n / work:,.0f} events/s core, "
            f"{n / qwall:,.0f} events/s wall, RSS {rss / 2**20:.0f} MiB"
        )
    grown = (rss_end - rss_built) / args.workflows
    print(
        f"RSS at end {rss_end / 2**20:.0f} MiB: state grew {grown / 1024:.1f} KiB/workflow during the run, "
        f"{(rss_end - rss0) / args.workflows / 1024:.1f} KiB/workflow in all, "
        f"{(rss_end - rss0) / (2 * args.workflows) / 1024:.1f} KiB/route"
    )
    t = time.perf_counter()
    sizes = [len(engine.to_bytes()) for engine in engines]
    ser_s = time.perf_counter() - t
    print(
        f"checkpoint bytes per engine: mean {statistics.fmean(sizes):,.0f}, max {max(sizes):,}, "
        f"total {sum(sizes) / 2**20:.1f} MiB; serializing all {len(sizes)} took {ser_s:.1f}s"
    )


if __name__ == "__main__":
    main()
