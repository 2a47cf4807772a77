"""Worker throughput against the raw consumer, on the embedded broker, in one run.

For each message shape (batched: 500 events per message; single: one event per
message) it pre-produces a topic, then measures

* **raw**: a plain aiokafka consumer that orjson-decodes every message (the ceiling:
  no validation, no state, no commits), and
* **worker**: ``python -m rollwatch.agents`` (faust, validation, engine, changelog
  checkpoints, dead letters, commits) consuming the same topic from the start,

and prints events/s and the ratio worker/raw. Targets: >= 100k events/s and ratio
>= 0.4 on batched messages, >= 10k events/s on single-event messages. No asserts:
this prints, CI does not gate on it.

    .venv/bin/python bench/bench_worker.py [--events 1000000] [--singles 50000] [--engine module:attr]
        [--worker-arg=--batch-within=0.2 ...] [--only batched|single] [--repeat N]

Detection latency through a real worker and the real engine: ``bench/bench_detection.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rollwatch.broker import EmbeddedBroker, free_port  # noqa: E402
from rollwatch.kafka import client_options, ensure_topics, make_producer  # noqa: E402
from rollwatch.settings import Settings, load_settings  # noqa: E402
from tests.agents.harness import WorkerProcess, write_config  # noqa: E402

PARTITIONS = 4
WORKFLOWS = 8
TARGETS = {"batched": (100_000.0, 0.4), "single": (10_000.0, None)}


START_S = time.time() - 86_400.0
"""A day ago: the worker refuses events older than 8 days or over 5 minutes ahead of its clock."""


def call_event(i: int, workflow: str) -> dict[str, object]:
    return {
        "type": "call",
        "event_id": f"evt-{i:09d}",
        "ts": START_S + i / 1000,
        "workflow": workflow,
        "route": "openai/gpt-5-mini@prompt-42",
        "arm": "candidate" if i % 20 == 0 else "control",
        "latency_ms": 400.0 + (i % 977),
        "status": "ok",
        "schema_valid": i % 97 != 0,
        "safety_blocked": False,
        "task_success": True if i % 3 == 0 else None,
        "cost_usd": 0.0012 + (i % 7) / 10_000,
        "trace_id": f"tr-{i:09d}",
        "input_tokens": 1200,
        "output_tokens": 240,
    }


def messages(events: int, per_message: int) -> list[tuple[bytes, bytes]]:
    out = []
    for start in range(0, events, per_message):
        workflow = f"wf-{(start // per_message) % WORKFLOWS}"
        batch = [call_event(i, workflow) for i in range(start, min(start + per_message, events))]
        value = orjson.dumps(batch if per_message > 1 else batch[0])
        out.append((workflow.encode(), value))
    return out


def scenario_settings(bootstrap: str, name: str) -> Settings:
    tag = f"b{uuid.uuid4().hex[:6]}-{name}"
    topics = {
        f"topic_{role}": f"{tag}.{role}" for role in ("telemetry", "control", "acks", "deadletter", "releases", "flags")
    }
    return load_settings(None, bootstrap_servers=bootstrap, telemetry_partitions=PARTITIONS, **topics)


async def produce_all(settings: Settings, payload: list[tuple[bytes, bytes]]) -> None:
    await ensure_topics(settings)
    producer = make_producer(settings, linger_ms=20, max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        pending = []
        for key, value in payload:
            pending.append(await producer.send(settings.topic_telemetry, value, key=key))
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def raw_rate(settings: Settings, expect_messages: int) -> float:
    """Events/s of aiokafka getmany + orjson.loads, from the first record to the last."""
    consumer = AIOKafkaConsumer(
        **client_options(settings), enable_auto_commit=False, max_partition_fetch_bytes=8 * 1024 * 1024
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_telemetry, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = events = 0
        start = 0.0
        while seen < expect_messages:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if not start and batches:
                start = time.perf_counter()
            for records in batches.values():
                for record in records:
                    value = orjson.loads(record.value or b"null")
                    events += len(value) if type(value) is list else 1
                seen += len(records)
        return events / (time.perf_counter() - start)
    finally:
        await consumer.stop()


@dataclass
class WorkerRun:
    rate: float
    events: int
    batches: int


async def worker_rate(
    settings: Settings, expect_messages: int, engine: str, workdir: Path, name: str, extra: tuple[str, ...] = ()
) -> WorkerRun:
    """Events/s the worker reports between the start of its first batch and the end of its last."""
    config = write_config(settings, workdir / f"{name}.toml")
    worker = WorkerProcess(
        config, f"bench-{uuid.uuid4().hex[:6]}", name, workdir / f"{name}.log", engine=engine, extra=extra
    )
    worker.start()
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            worker.check_alive()
            status = worker.status()
            if status and status["totals"]["messages"] >= expect_messages:
                totals = status["totals"]
                elapsed = status["last_batch_at"] - status["first_batch_at"]
                return WorkerRun(totals["events"] / elapsed, totals["events"], totals["batches"])
            await asyncio.sleep(0.25)
        raise TimeoutError(f"worker did not consume {expect_messages} messages:\n{worker.tail()}")
    finally:
        worker.stop()


def faust_ceiling_child(config: Path, expect_messages: int, web_port: int) -> None:
    """Child process: a bare faust agent (noack_take + ack, nothing else) on the same topic.

    This is the most faust itself delivers on this machine; the worker cannot beat it on
    single-event messages, where faust's per-message path (two tasks per message in
    ``Consumer._drain_messages``) dominates. Prints ``RATE <events/s>`` and exits hard.
    """
    import gc
    import os

    import faust

    settings = load_settings(config)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = faust.App(
        f"ceiling-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{settings.bootstrap_servers}",
        store="memory://",
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
        web_port=web_port,
        broker_session_timeout=4,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=4,
        datadir=str(config.parent / "ceiling-data"),
        topic_disable_leader=True,
        stream_buffer_maxsize=16_384,
        consumer_max_fetch_size=8 * 1024 * 1024,
    )
    topic = app.topic(settings.topic_telemetry, key_serializer="raw", value_serializer="raw")
    seen = [0, 0.0]

    async def bare(stream: Any) -> None:
        async for events in stream.noack_take(1000, within=0.2):
            if not seen[1]:
                seen[1] = time.time()
            for event in events:
                await stream.ack(event)
            seen[0] += len(events)
            if seen[0] >= expect_messages:
                print(f"RATE {seen[0] / (time.time() - seen[1])}", flush=True)
                os._exit(0)

    app.agent(topic)(bare)
    faust.Worker(app, loop=loop, loglevel="warning", redirect_stdouts=False).execute_from_commandline()


async def faust_ceiling(settings: Settings, expect_messages: int, workdir: Path) -> float | None:
    config = write_config(settings, workdir / "ceiling.toml")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--faust-ceiling",
        str(config),
        str(expect_messages),
        str(free_port()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
    except TimeoutError:
        proc.kill()
        return None
    match = re.search(rb"RATE (\S+)", out)
    return float(match.group(1)) if match else None


def histogram_quantile(metrics_text: str, name: str, q: float, labels: str = "") -> float | None:
    """The ``q`` quantile of a Prometheus histogram in a /metrics page (linear within buckets).

    ``labels`` selects one series of a labelled histogram, written as it appears after
    ``le`` (``stage="fold"``).
    """
    rest = f",{labels}" if labels else ""
    buckets = sorted(
        (math.inf if le == "+Inf" else float(le), float(count))
        for le, count in re.findall(rf'^{name}_bucket{{le="([^"]+)"{re.escape(rest)}}} (\S+)$', metrics_text, re.M)
    )
    if not buckets or buckets[-1][1] == 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper) or count == below:
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return None


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="rollwatch-bench-") as tmp:
        await run_in(args, Path(tmp))


async def run_in(args: argparse.Namespace, workdir: Path) -> None:
    with EmbeddedBroker(port=free_port()) as broker:
        print(
            f"broker {broker.bootstrap_servers}; engine {args.engine}; {PARTITIONS} partitions, {WORKFLOWS} workflows"
        )
        shapes = (("batched", 500, args.events), ("single", 1, args.singles))
        for shape, per_message, events in (s for s in shapes if args.only in (None, s[0])):
            settings = scenario_settings(broker.bootstrap_servers, shape)
            payload = messages(events, per_message)
            t0 = time.perf_counter()
            await produce_all(settings, payload)
            size = sum(len(v) for _, v in payload) / 1e6
            took = time.perf_counter() - t0
            print(f"\n[{shape}] {events} events in {len(payload)} messages ({size:.0f} MB), produced in {took:.1f}s")
            target, ratio_target = TARGETS[shape]
            ratios: list[float] = []
            for round_ in range(args.repeat):
                # Raw and worker back to back, each pair a ratio: on a shared machine the load
                # drifts between runs, and the median of paired ratios drifts least.
                raw = await raw_rate(settings, len(payload))
                run_ = await worker_rate(settings, len(payload), args.engine, workdir, shape, tuple(args.worker_arg))
                ratios.append(run_.rate / raw)
                tag = f" (round {round_ + 1}/{args.repeat})" if args.repeat > 1 else ""
                print(f"  raw aiokafka + orjson : {raw:>12,.0f} events/s{tag}")
                batches = f"{run_.batches} batches, target >= {target:,.0f}"
                print(f"  worker                : {run_.rate:>12,.0f} events/s  ({batches})")
                print(
                    f"  ratio worker/raw      : {ratios[-1]:>12.2f}"
                    + (f"  (target >= {ratio_target})" if ratio_target else "")
                )
            if args.repeat > 1:
                print(f"  median ratio          : {statistics.median(ratios):>12.2f}  of {args.repeat} paired runs")
            if shape == "single":
                ceiling = await faust_ceiling(settings, len(payload), workdir)
                if ceiling:
                    print(
                        f"  bare faust agent      : {ceiling:>12,.0f} events/s  (worker/bare {run_.rate / ceiling:.2f})"
                    )
        print("\ndetection latency (breaching event to command): python bench/bench_detection.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the batched scenario")
    parser.add_argument("--singles", type=int, default=50_000, help="events (= messages) in the single scenario")
    parser.add_argument(
        "--engine", default="rollwatch.gates.engine:EngineFactoryImpl", help="module:attribute of the factory"
    )
    parser.add_argument(
        "--worker-arg",
        action="append",
        default=[],
        help="an extra worker option (repeat: --worker-arg=--batch-within=0.2)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="paired raw + worker runs per shape (median ratio)")
    parser.add_argument("--only", choices=("batched", "single"), help="run one message shape")
    parser.add_argument("--faust-ceiling", nargs=3, metavar=("CONFIG", "MESSAGES", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.faust_ceiling:
        config, expect, port = args.faust_ceiling
        faust_ceiling_child(Path(config), int(expect), int(port))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
