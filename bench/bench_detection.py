"""Detection latency through a real worker: breaching event to rollback command, p50/p99.

Several workflows run the support-summary ticket at once; each gets real-time traffic
whose candidate develops a schema regression. Two figures come out of one run:

* **end to end** (the target): for each rollback command, the wall time it arrived at a
  consumer of the control topic minus the wall time the breaching event (the command's
  newest evidence event, which is what the gate's ``breach_ts_ms`` points at) was handed
  to the producer. Measured here, on the consumer side, from exact samples;
* **worker**: the worker's own ``rollwatch_detection_latency_seconds`` histogram (broker
  ack of the command minus the event time of the breaching event), scraped from /metrics
  and interpolated within its buckets,

plus the worker's per-stage histogram (``rollwatch_batch_stage_seconds``: time waiting to be
fetched and batched, fold, judge, command delivery, checkpoint), to show where time goes.
Target: p99 < 1 s once the gate's sample requirement is met.

Events are sent when they are due in event time (the synthetic stream yields a review
500 ms after its call; sending it with its call would date the call 500 ms before it is
sent). The observer fetches with a short ``fetch_max_wait_ms``: the embedded broker answers
a waiting fetch only when it expires, and a consumer's own wait is not the worker's latency.

    .venv/bin/python bench/bench_detection.py [--workflows 8] [--batch-within S] [--fetch-max-wait S]
        [--checkpoint-interval S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_worker import histogram_quantile  # noqa: E402
from rollwatch.broker import EmbeddedBroker, free_port  # noqa: E402
from rollwatch.commands import decode_command  # noqa: E402
from rollwatch.events import Event, encode_events  # noqa: E402
from rollwatch.kafka import client_options, ensure_topics, make_producer  # noqa: E402
from rollwatch.ops.traffic import in_time_order, release_value  # noqa: E402
from rollwatch.settings import Settings, load_settings  # noqa: E402
from rollwatch.synth import Traffic, generate  # noqa: E402
from rollwatch.tickets.load import load_ticket, load_ticket_bytes, ticket_to_json  # noqa: E402

EXAMPLE = ROOT / "examples" / "support-summary.ticket.yaml"
STAGES = ("wait", "fold", "judge", "commands", "checkpoint", "ack")


async def send_paced(
    settings: Settings, traffic: Traffic, ticket: bytes, sent: dict[str, float], stop: asyncio.Event, batch: int = 5
) -> None:
    """Real-time traffic, each message sent when its last event is due; ``sent[event_id]`` = wall time handed over."""
    producer = make_producer(settings)
    await producer.start()
    try:
        key = traffic.workflow.encode()
        release = release_value(settings, load_ticket_bytes(ticket, "ticket"), ticket)
        await producer.send_and_wait(settings.topic_releases, release, key=key)
        start_ms = int(time.time() * 1000)
        started = time.monotonic()
        pending: list[Event] = []
        for event in in_time_order(generate(replace(traffic, start_ms=start_ms))):
            pending.append(event)
            if len(pending) < batch:
                continue
            delay = started + (pending[-1].ts_ms - start_ms) / 1000 - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
            now = time.time()
            await producer.send(settings.topic_telemetry, encode_events(pending), key=key)
            for item in pending:
                sent[item.event_id] = now
            pending = []
    finally:
        await producer.stop()


async def collect(settings: Settings, want: int, deadline_s: float, sent: dict[str, float]) -> list[float]:
    """End-to-end seconds per rollback command: arrival here minus the send of its breaching event."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, fetch_max_wait_ms=10)
    await consumer.start()
    latencies: list[float] = []
    try:
        parts = [TopicPartition(settings.topic_control, p) for p in range(settings.control_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = time.monotonic() + deadline_s
        while len(latencies) < want and time.monotonic() < end:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                arrived = time.time()
                for record in records:
                    command = decode_command(record.value or b"")
                    if command.action == "promote":
                        continue
                    breaching = command.evidence.event_ids[0] if command.evidence.event_ids else None
                    took = arrived - sent[breaching] if breaching in sent else None
                    shown = f"{took * 1000:.0f} ms" if took is not None else "breaching event unknown"
                    print(f"  {command.workflow}: {command.action} by {command.reason.gate}, {shown}", flush=True)
                    if took is not None:
                        latencies.append(took)
    finally:
        await consumer.stop()
    return latencies


async def play(settings: Settings, workflows: int, deadline_s: float) -> list[float]:
    base = load_ticket(EXAMPLE)
    await ensure_topics(settings)
    sent: dict[str, float] = {}
    stop = asyncio.Event()
    senders = []
    for i in range(workflows):
        ticket = base.model_copy(update={"workflow": f"wf-{i}", "ticket": f"REL-{i}"})
        traffic = Traffic(
            workflow=f"wf-{i}",
            control_route=base.control.route,
            candidate_route=base.candidate.route,
            regression="schema",
            calls_per_second=200.0,
            candidate_share=0.2,
            onset_ms=10_000,
            duration_ms=int(deadline_s * 1000),
            seed=1000 + i,
        )
        senders.append(asyncio.create_task(send_paced(settings, traffic, ticket_to_json(ticket), sent, stop)))
    try:
        return await collect(settings, workflows, deadline_s, sent)
    finally:
        stop.set()
        await asyncio.gather(*senders)


def wait_ready(worker: subprocess.Popen[bytes], web: int, timeout: float = 60.0) -> None:
    """Traffic starts once the worker owns its partitions: a start-up backlog is not detection latency."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with {worker.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web}/status", timeout=2) as response:
                if json.loads(response.read()).get("ready"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the worker was not ready after {timeout:.0f}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def stage_line(metrics: str, stage: str) -> str:
    name, labels = "rollwatch_batch_stage_seconds", f'stage="{stage}"'
    count = re.search(rf"^{name}_count{{{labels}}} (\S+)$", metrics, re.M)
    p50, p99 = histogram_quantile(metrics, name, 0.5, labels), histogram_quantile(metrics, name, 0.99, labels)

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.1f} ms"

    return f"    {stage:<10} p50 {ms(p50):>9}  p99 {ms(p99):>9}  ({float(count.group(1)) if count else 0:.0f} batches)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=8)
    for option in ("--batch-within", "--fetch-max-wait", "--checkpoint-interval"):
        parser.add_argument(option, type=float, default=None, help=f"the worker's {option} (default: the worker's)")
    args = parser.parse_args()
    deadline_s = 90.0
    with EmbeddedBroker(port=free_port()) as broker, tempfile.TemporaryDirectory() as data:
        key = f"hmac-sha256:{secrets.token_hex(16)}"  # signs the ticket and the commands; the worker trusts it
        settings = load_settings(None, bootstrap_servers=broker.bootstrap_servers, signing_key=key)
        asyncio.run(ensure_topics(settings))
        web = free_port()
        env = os.environ | {"ROLLWATCH_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "ROLLWATCH_SIGNING_KEY": key}
        extra = []
        for option in ("batch_within", "fetch_max_wait", "checkpoint_interval"):
            if getattr(args, option) is not None:
                extra += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
        with open(Path(data) / "worker.log", "w") as log:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rollwatch.agents",
                    "--web-port",
                    str(web),
                    "--data-dir",
                    data,
                    "--log-level",
                    "warning",
                    "--session-timeout",
                    "3",
                    "--rebalance-timeout",
                    "3",
                    *extra,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_ready(worker, web)
                cpu0, wall0 = cpu_seconds(worker.pid), time.monotonic()
                latencies = asyncio.run(play(settings, args.workflows, deadline_s))
                cpu = (cpu_seconds(worker.pid) - cpu0) / (time.monotonic() - wall0)
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{web}/metrics", timeout=5).read().decode()
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)
    name = "rollwatch_detection_latency_seconds"
    p50, p99 = histogram_quantile(metrics, name, 0.5), histogram_quantile(metrics, name, 0.99)
    count = re.search(rf"^{name}_count (\S+)$", metrics, re.M)
    print(f"{len(latencies)}/{args.workflows} workflows rolled back; worker emitted {count.group(1) if count else 0}")
    if latencies:
        print(
            f"breaching event produced -> command consumed (end to end, {len(latencies)} commands): "
            f"p50 {quantile(latencies, 0.5):.3f}s, p99 {quantile(latencies, 0.99):.3f}s, "
            f"max {max(latencies):.3f}s (target p99 < 1 s)"
        )
    print(f"breaching event time -> command acked (worker's {name}): p50 {p50}s, p99 {p99}s (within buckets)")
    print(f"  worker CPU while the traffic ran: {cpu:.0%} of one core (load average {os.getloadavg()[0]:.1f})")
    print("  worker batch stages:")
    for stage in STAGES:
        print(stage_line(metrics, stage))


if __name__ == "__main__":
    main()
