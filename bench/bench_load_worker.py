"""Load through a real worker process: 10,000 workflows x 2 arms, lag and memory over time.

Issue 8 asks for 10,000 workflows with two arms each and 1e7 events *through the worker*
with memory bounded and no growing lag at the benchmarked rate. ``bench/bench_load.py``
runs the pure core; this one runs ``python -m rollwatch.agents`` (faust, validation, the
real engine, changelog checkpoints, commits) on the embedded broker:

1. **tickets**: the example ticket, renamed per workflow, is published for every
   workflow on the releases topic (JSON, keyed by workflow); the worker is started and
   the time until all engines are armed is measured (``/status``).
2. **calibration**: a separate producer process writes a backlog (``--calibrate`` of
   the events) as fast as it can; the worker's capacity is its consumption rate while
   it is behind.
3. **paced**: the producer writes the rest at ``--load`` (80%) of that capacity. Every
   ``--sample-s`` seconds the bench records consumed events, lag, and the RSS of the
   worker and of the broker; it prints them per quarter of the paced phase.

Telemetry is keyed by workflow (so partitioned by workflow), ``--per-message`` events
per message, the workflows in round-robin, 5% of calls on the candidate arm, events
stamped with the wall clock when they are produced (live telemetry: the worker judges
on the wall clock too).

**Lag** is measured outside the worker: the producer records the offset of every
acknowledged message, so the true log end per partition is known (Tansu under-reports
end offsets after multi-record batches, and the worker's own ``rollwatch_consumer_lag``
is computed from that highwater); the worker's consumer group's committed offsets are
read every sample. Lag = produced - committed, in messages, times ``--per-message``.
Committed offsets trail processing by at most the commit interval (1 s). ``/metrics``
is not scraped during the run: with 10,000 engines it renders every gate of every
workflow and would block the worker's loop.

**State per route**: at the end, the latest changelog record of each workflow (read
from the tail of the changelog) gives the serialized checkpoint bytes per workflow;
per route is that / 2. RSS growth of the worker from "all engines armed" to the end
is also divided by the number of routes. Nothing is extrapolated: if the time budget
(``--max-minutes``) ends first, the figures are those of what ran.

    .venv/bin/python bench/bench_load_worker.py [--events 1e7] [--workflows 10000] [--per-message 100]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rollwatch.broker import EmbeddedBroker, free_port  # noqa: E402
from rollwatch.kafka import client_options, ensure_topics, make_producer  # noqa: E402
from rollwatch.ops.traffic import release_value  # noqa: E402
from rollwatch.settings import Settings, load_settings  # noqa: E402
from rollwatch.tickets import load_ticket, load_ticket_bytes, ticket_to_json  # noqa: E402
from tests.agents.harness import WorkerProcess, write_config  # noqa: E402

EXAMPLE = ROOT / "examples" / "support-summary.ticket.yaml"
CONTROL, CANDIDATE = "support-summary/stable", "support-summary/candidate"


def rss_of(pid: int | None) -> int:
    """Resident set size of a process from /proc (bytes); 0 if it is gone."""
    if pid is None:
        return 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far, from /proc/PID/stat; 0 if it is gone."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def code_state() -> str:
    """The commit under test and whether rollwatch/ has uncommitted changes (the worker runs the tree)."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "rollwatch").splitlines()
    return f"commit {git('rev-parse', '--short', 'HEAD')}" + (
        f" + {len(changed)} uncommitted file(s) in rollwatch/" if changed else ""
    )


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def workflow_name(index: int) -> str:
    return f"wf-{index:05d}"


def ticket_messages(workflows: int) -> list[tuple[bytes, bytes]]:
    """The example ticket, renamed, for every workflow: (key, JSON ticket)."""
    base = load_ticket(EXAMPLE)
    out = []
    for w in range(workflows):
        name = workflow_name(w)
        out.append((name.encode(), ticket_to_json(base.model_copy(update={"workflow": name}))))
    return out


def telemetry_message(seq: int, workflows: int, per_message: int, rng: random.Random) -> tuple[bytes, bytes]:
    """Message ``seq``: ``per_message`` calls of workflow ``seq % workflows`` stamped now (5% candidate)."""
    name = workflow_name(seq % workflows)
    now = time.time()
    first = seq * per_message
    events = []
    for j in range(per_message):
        candidate = rng.random() < 0.05
        events.append(
            {
                "type": "call",
                "event_id": f"{name}-{first + j}",
                "ts": now + j / 1000,
                "workflow": name,
                "route": CANDIDATE if candidate else CONTROL,
                "arm": "candidate" if candidate else "control",
                "latency_ms": 300.0 + rng.random() * 900,
                "status": "error" if rng.random() < 0.02 else "ok",
                "schema_valid": rng.random() >= 0.005,
                "safety_blocked": False,
                "task_success": True if rng.random() < 0.33 else None,
                "cost_usd": 0.0012 + rng.random() / 10_000,
                "trace_id": f"tr-{first + j}",
            }
        )
    return name.encode(), orjson.dumps(events)


# -- the producer process ------------------------------------------------------------------


def producer_child(
    bootstrap: str,
    topic: str,
    workflows: int,
    per_message: int,
    backlog: int,
    total: int,
    ends: Any,
    control: Connection,
) -> None:
    """Child process: ``backlog`` messages flat out, then the rest at the rate the parent sends.

    ``ends[p]`` is the next offset of partition ``p`` as acknowledged by the broker;
    ``ends[-1]`` counts acknowledged messages. A rate of 0 stops the child early.
    """
    asyncio.run(_produce(bootstrap, topic, workflows, per_message, backlog, total, ends, control))


async def _produce(
    bootstrap: str,
    topic: str,
    workflows: int,
    per_message: int,
    backlog: int,
    total: int,
    ends: Any,
    control: Connection,
) -> None:
    settings = load_settings(None, bootstrap_servers=bootstrap)
    producer = make_producer(settings, linger_ms=10, max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024)
    await producer.start()
    rng = random.Random(8)
    pending: list[Any] = []

    async def settle() -> None:
        for meta in await asyncio.gather(*pending):
            ends[meta.partition] = max(ends[meta.partition], meta.offset + 1)
        ends[len(ends) - 1] += len(pending)
        pending.clear()

    try:
        seq = 0
        while seq < backlog:
            key, value = telemetry_message(seq, workflows, per_message, rng)
            pending.append(await producer.send(topic, value, key=key))
            seq += 1
            if len(pending) >= 500:
                await settle()
        await settle()
        control.send(("backlog", seq, time.time()))
        rate = float(control.recv())  # events/s
        if rate <= 0:
            return
        started, first = time.monotonic(), seq
        while seq < total:
            due = started + (seq - first) * per_message / rate
            ahead = due - time.monotonic()
            if ahead > 0:
                if pending:
                    await settle()
                    continue
                await asyncio.sleep(ahead)
            key, value = telemetry_message(seq, workflows, per_message, rng)
            pending.append(await producer.send(topic, value, key=key))
            seq += 1
            if len(pending) >= 200:
                await settle()
            if control.poll() and float(control.recv()) <= 0:
                break
        await settle()
        control.send(("done", seq, time.time()))
    finally:
        await producer.stop()


# -- sampling ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    produced: int  # messages acknowledged by the broker
    committed: int  # messages the worker's group committed
    worker_rss: int
    broker_rss: int
    worker_cpu: float  # CPU seconds used by the worker process so far

    @property
    def lag(self) -> int:
        return max(0, self.produced - self.committed)


class Sampler:
    """Committed offsets of the worker's group versus what the producer knows it wrote."""

    def __init__(self, settings: Settings, group: str, ends: Any, worker: WorkerProcess, broker_pid: int | None):
        self.settings, self.group, self.ends = settings, group, ends
        self.worker, self.broker_pid = worker, broker_pid
        self.tps = [TopicPartition(settings.topic_telemetry, p) for p in range(settings.telemetry_partitions)]
        self.consumer = AIOKafkaConsumer(**client_options(settings), group_id=group, enable_auto_commit=False)
        self.samples: list[Sample] = []

    async def __aenter__(self) -> Sampler:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def sample(self) -> Sample:
        committed = 0
        for tp in self.tps:
            committed += await self.consumer.committed(tp) or 0
        pid = self.worker.proc.pid if self.worker.proc else None
        produced = int(self.ends[len(self.ends) - 1])
        s = Sample(time.time(), produced, committed, rss_of(pid), rss_of(self.broker_pid), cpu_seconds(pid))
        self.samples.append(s)
        return s


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def full_status(worker: WorkerProcess, timeout: float = 120.0) -> dict[str, Any] | None:
    """``/status`` with a timeout fit for 10,000 workflows (tens of MB, seconds to build); None if down."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/status", timeout=timeout) as response:
            result: dict[str, Any] = orjson.loads(response.read())
            return result
    except (OSError, ValueError):
        return None


async def wait_armed(worker: WorkerProcess, workflows: int, timeout: float) -> tuple[float, dict[str, Any]]:
    """Seconds until ``/status`` shows an engine with a ticket for every workflow."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        worker.check_alive()
        status = full_status(worker)
        if status and status.get("ready"):
            armed = sum(1 for w in status["workflows"].values() if (w["engine"] or {}).get("ticket"))
            if armed >= workflows:
                return time.monotonic() - started, status
        await asyncio.sleep(2.0)
    raise TimeoutError(f"tickets not installed on {workflows} workflows within {timeout:.0f}s:\n{worker.tail()}")


async def checkpoint_sizes(settings: Settings, topic: str, partitions: int, per_partition: int) -> dict[bytes, int]:
    """Bytes of the latest changelog record of each workflow, from the last records of each partition."""
    consumer = AIOKafkaConsumer(
        **client_options(settings), enable_auto_commit=False, max_partition_fetch_bytes=16 * 1024 * 1024
    )
    await consumer.start()
    latest: dict[bytes, int] = {}
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(0, ends[tp] - per_partition))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if not batches:
                break
            for records in batches.values():
                for record in records:
                    if record.key is not None and record.value is not None:
                        latest[record.key] = len(record.value)
    finally:
        await consumer.stop()
    return latest


def quarter_rows(samples: list[Sample], per_message: int) -> list[str]:
    """Consumed events/s, lag (at the end and the most within) and RSS per quarter of ``samples``."""
    rows: list[str] = []
    if len(samples) < 5:
        return rows
    cut = [samples[0]] + [samples[min(len(samples) - 1, round(len(samples) * k / 4))] for k in (1, 2, 3)]
    cut.append(samples[-1])
    for k in range(4):
        a, b = cut[k], cut[k + 1]
        inside = [s for s in samples if a.at <= s.at <= b.at]
        rate = (b.committed - a.committed) * per_message / max(1e-9, b.at - a.at)
        produced = (b.produced - a.produced) * per_message / max(1e-9, b.at - a.at)
        cpu = b.worker_cpu - a.worker_cpu
        per_cpu = (b.committed - a.committed) * per_message / cpu if cpu > 0 else 0.0
        rows.append(
            f"  quarter {k + 1}: consumed {rate:>9,.0f} events/s (produced {produced:,.0f}/s); "
            f"worker CPU {cpu / max(1e-9, b.at - a.at):.0%} of a core, {per_cpu:,.0f} events per CPU-second; "
            f"lag at end {b.lag * per_message:>9,} events, max {max(s.lag for s in inside) * per_message:,}; "
            f"RSS worker {mib(b.worker_rss)}, broker {mib(b.broker_rss)}"
        )
    return rows


async def run(args: argparse.Namespace, workdir: Path) -> None:
    total_msgs = int(args.events) // args.per_message
    backlog_msgs = int(total_msgs * args.calibrate)
    deadline = time.monotonic() + args.max_minutes * 60
    with EmbeddedBroker(port=free_port()) as broker:
        tag = f"lw{uuid.uuid4().hex[:6]}"
        roles = ("telemetry", "control", "acks", "deadletter", "releases", "flags")
        settings = load_settings(
            None,
            bootstrap_servers=broker.bootstrap_servers,
            telemetry_partitions=args.partitions,
            signing_key=f"hmac-sha256:{uuid.uuid4().hex}",  # signs the tickets; the worker trusts it
            **{f"topic_{role}": f"{tag}.{role}" for role in roles},
        )
        await ensure_topics(settings)
        print(
            f"broker {broker.bootstrap_servers}; {args.workflows:,} workflows x 2 arms; "
            f"{total_msgs * args.per_message:,} events planned in {total_msgs:,} messages of {args.per_message}; "
            f"{args.partitions} partitions; engine {args.engine}"
        )
        print(f"code: {code_state()}; load average {load_average()} on {os.cpu_count()} cores")
        t = time.perf_counter()
        tickets = [
            (k, release_value(settings, load_ticket_bytes(v, "ticket"), v)) for k, v in ticket_messages(args.workflows)
        ]
        producer = make_producer(settings, linger_ms=20, max_batch_size=1024 * 1024)
        await producer.start()
        try:
            futures = [await producer.send(settings.topic_releases, v, key=k) for k, v in tickets]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        print(
            f"tickets: {len(tickets):,} published ({len(tickets[0][1]):,} bytes each) in {time.perf_counter() - t:.1f}s"
        )

        group = f"bench-{tag}"
        config = write_config(settings, workdir / "worker.toml")
        extra = ("--session-timeout", str(args.session_timeout), "--rebalance-timeout", str(args.session_timeout))
        worker = WorkerProcess(config, group, "load", workdir / "worker.log", engine=args.engine, extra=extra)
        worker.start()
        print(f"worker pid {worker.proc.pid if worker.proc else None}, log {worker.log}", flush=True)
        try:
            armed_s, status = await wait_armed(worker, args.workflows, max(60.0, deadline - time.monotonic()))
            assert worker.proc is not None
            rss_armed = rss_of(worker.proc.pid)
            print(
                f"worker armed: {len(status['workflows']):,} engines with a ticket {armed_s:.0f}s after start; "
                f"RSS worker {mib(rss_armed)} ({rss_armed / args.workflows / 1024:.1f} KiB/workflow incl. the "
                f"process), broker {mib(rss_of(broker.pid))}"
            )
            await load_phases(args, settings, group, worker, broker, rss_armed, total_msgs, backlog_msgs, deadline)
            changelog = f"{group}-state-changelog"
            sizes = await checkpoint_sizes(settings, changelog, args.partitions, args.workflows // args.partitions * 2)
            if sizes:
                values = list(sizes.values())
                print(
                    f"checkpoint (latest changelog record) of {len(values):,} workflows: "
                    f"mean {statistics.fmean(values):,.0f} B, "
                    f"max {max(values):,} B; per route (/2) {statistics.fmean(values) / 2:,.0f} B"
                )
            t = time.perf_counter()
            final = full_status(worker)
            if final:
                took = time.perf_counter() - t
                events = final["totals"]["events"]
                print(
                    f"worker totals: {events:,} events in {final['totals']['batches']:,} batches, "
                    f"{final['totals']['commands']} commands, {final['totals']['deadletters']} dead letters, "
                    f"{final['totals']['ticks']} judge ticks; "
                    f"/status of {len(final['workflows']):,} workflows took {took:.1f}s"
                )
        finally:
            worker.stop()


async def load_phases(
    args: argparse.Namespace,
    settings: Settings,
    group: str,
    worker: WorkerProcess,
    broker: EmbeddedBroker,
    rss_armed: int,
    total_msgs: int,
    backlog_msgs: int,
    deadline: float,
) -> None:
    ctx = mp.get_context("spawn")
    ends = ctx.Array("q", args.partitions + 1, lock=False)
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=producer_child,
        args=(
            broker.bootstrap_servers,
            settings.topic_telemetry,
            args.workflows,
            args.per_message,
            backlog_msgs,
            total_msgs,
            ends,
            child,
        ),
        daemon=True,
    )
    per = args.per_message
    proc.start()
    try:
        async with Sampler(settings, group, ends, worker, broker.pid) as sampler:
            # -- calibration: a backlog, consumed as fast as the worker can
            t0 = time.time()
            backlog_done: float | None = None
            while True:
                worker.check_alive()
                s = await sampler.sample()
                if backlog_done is None and parent.poll():
                    backlog_done = parent.recv()[2]
                if backlog_done is not None and s.committed >= backlog_msgs:
                    break
                if time.monotonic() > deadline:
                    print("time budget reached during calibration")
                    parent.send(0)
                    return
                await asyncio.sleep(args.sample_s)
            assert backlog_done is not None
            # Capacity: the worker's own account of the backlog (events between the start of its
            # first batch and the end of its last, judge ticks in between included); one /status.
            status = full_status(worker) or {}
            totals = status.get("totals", {})
            span = (status.get("last_batch_at") or 0) - (status.get("first_batch_at") or 0)
            capacity = totals.get("events", 0) / span if span > 0 else 0.0
            print(
                f"\ncalibration: {backlog_msgs * per:,} events produced in {backlog_done - t0:.0f}s "
                f"({backlog_msgs * per / max(1e-9, backlog_done - t0):,.0f} events/s), consumed by {s.at - t0:.0f}s; "
                f"worker capacity {capacity:,.0f} events/s ({totals.get('events', 0):,} events in "
                f"{totals.get('batches', 0):,} batches over {span:.1f}s, {totals.get('ticks', 0)} judge ticks so far)"
            )
            print(f"  RSS worker {mib(s.worker_rss)}, broker {mib(s.broker_rss)}")
            if capacity <= 0:
                parent.send(0)
                return
            rate = capacity * args.load
            paced_from = len(sampler.samples)
            parent.send(rate)
            print(f"paced: {(total_msgs - backlog_msgs) * per:,} events at {rate:,.0f} events/s ({args.load:.0%})")
            done = False
            stopped_early = False
            while True:
                worker.check_alive()
                s = await sampler.sample()
                if not done and parent.poll():
                    parent.recv()
                    done = True
                if done and s.committed >= s.produced:
                    break
                if time.monotonic() > deadline:
                    stopped_early = True
                    parent.send(0)
                    break
                await asyncio.sleep(args.sample_s)
            paced = sampler.samples[paced_from - 1 :]
            last = paced[-1]
            span = last.at - paced[0].at
            consumed = (last.committed - paced[0].committed) * per
            print(
                f"paced phase: {consumed:,} events consumed in {span:.0f}s ({consumed / max(1e-9, span):,.0f} events/s)"
                + ("; STOPPED by the time budget" if stopped_early else "")
            )
            for row in quarter_rows(paced, per):
                print(row)
            peak_broker = max(x.broker_rss for x in sampler.samples)
            peak_worker = max(x.worker_rss for x in sampler.samples)
            grown = last.worker_rss - rss_armed
            print(
                f"events through the worker in all: {last.committed * per:,}; RSS worker at end {mib(last.worker_rss)} "
                f"(peak {mib(peak_worker)}; +{mib(grown)} since armed = "
                f"{grown / (2 * args.workflows) / 1024:.1f} KiB/route), "
                f"broker peak {mib(peak_broker)}"
            )
            print(f"load average at the end {load_average()}")
            print("lag samples (s since start, lag events, worker RSS MiB):")
            print(
                "  "
                + "; ".join(f"{x.at - t0:.0f} {x.lag * per:,} {x.worker_rss / 2**20:.0f}" for x in sampler.samples[::3])
            )
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=float, default=1e7, help="events in all (1e6 for a quick run)")
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--per-message", type=int, default=100, help="events per telemetry message")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--calibrate", type=float, default=0.2, help="share of the events produced as a backlog")
    parser.add_argument("--load", type=float, default=0.8, help="paced rate as a share of the measured capacity")
    parser.add_argument("--sample-s", type=float, default=3.0)
    parser.add_argument("--max-minutes", type=float, default=25.0, help="time budget; stops early, prints what ran")
    parser.add_argument("--session-timeout", type=float, default=10.0, help="worker session timeout (production: 10)")
    parser.add_argument("--engine", default="rollwatch.gates.engine:EngineFactoryImpl")
    parser.add_argument("--keep", type=Path, help="keep the worker's log and data in this directory")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args, args.keep))
        return
    with tempfile.TemporaryDirectory(prefix="rollwatch-loadw-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
