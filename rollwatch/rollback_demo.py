"""``make demo``: a canary regresses and rollwatch rolls it back, end to end on one machine.

Everything is real and local. An embedded broker runs on a free port. A worker runs as
its own process with the production engine, signing with a key made for this run.
The release ticket is `examples/support-summary.ticket.yaml`. Traffic plays the
workflow in real time: a control arm and a 5% candidate whose schema-validation
failures jump from 0.1% to 6% at the onset. The demo waits for the signed rollback
command on the control topic. It prints the command and the time from the onset of
the regression to its arrival, then stops everything. It exits 1 if no command came.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from rollwatch.broker import EmbeddedBroker, free_port
from rollwatch.commands import RollbackCommand, decode_command
from rollwatch.errors import ContractError
from rollwatch.kafka import client_options, ensure_topics
from rollwatch.settings import Settings, load_settings
from rollwatch.synth import Traffic

__all__ = ["run_rollback_demo"]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "support-summary.ticket.yaml"


def _clock(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]


async def _wait_for_command(
    settings: Settings, deadline_s: float, stop: asyncio.Event
) -> tuple[RollbackCommand, float] | None:
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(settings.topic_control, p) for p in range(settings.control_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    try:
                        command = decode_command(record.value or b"")
                    except ContractError:
                        continue
                    if command.action != "promote":
                        return command, time.time() * 1000
        return None
    finally:
        await consumer.stop()


async def _play(settings: Settings, traffic: Traffic, out: Callable[[str], None], deadline_s: float) -> int:
    from rollwatch.ops.traffic import send_traffic

    await ensure_topics(settings)
    stop = asyncio.Event()
    start_ms = time.time() * 1000
    traffic = replace(traffic, start_ms=int(start_ms))
    onset_ms = start_ms + traffic.onset_ms
    out(
        f"{_clock(start_ms)}  traffic: {traffic.calls_per_second:.0f} calls/s, "
        f"{traffic.candidate_share:.0%} on the candidate; schema failures jump at {_clock(onset_ms)}"
    )
    sender = asyncio.create_task(
        send_traffic(settings, traffic, batch_size=50, pace=1.0, ticket_raw=EXAMPLE.read_bytes(), stop=stop)
    )
    try:
        found = await _wait_for_command(settings, deadline_s, stop)
    finally:
        stop.set()
        await sender
    if found is None:
        out(f"no rollback command within {deadline_s:.0f}s")
        return 1
    command, arrived_ms = found
    reason = command.reason
    out(f"{_clock(arrived_ms)}  ROLLBACK on {settings.topic_control}: {command.workflow} {command.action}")
    out(
        f"    gate {reason.gate}: {reason.metric} = {reason.observed} > {reason.threshold} "
        f"(control {reason.control}, {reason.window}, samples {reason.samples})"
    )
    out(f"    flags {dict(command.flags)}")
    out(
        f"    issued by {command.issued_by} under {command.ticket.id} r{command.ticket.revision}, "
        f"command id {command.command_id}"
    )
    signed = f"signed {command.signature.alg} by {command.signature.key_id}" if command.signature else "UNSIGNED"
    out(f"    {signed}; evidence traces {', '.join(command.evidence.trace_ids[:5])}")
    if command.customer_message:
        out(f"    customer message ({command.customer_message.key}): {command.customer_message.text}")
    out(f"regression onset to rollback command: {(arrived_ms - onset_ms) / 1000:.1f}s")
    return 0


def run_rollback_demo(
    out: Callable[[str], None] = print,
    *,
    calls_per_second: float = 800.0,
    onset_s: float = 15.0,
    deadline_s: float = 120.0,
) -> int:
    """Run the whole demo; the process exit code."""
    port = free_port()
    key = f"hmac-sha256:{secrets.token_hex(32)}"
    with EmbeddedBroker(port=port) as broker, tempfile.TemporaryDirectory(prefix="rollwatch-demo-") as data:
        log_path = Path(data) / "worker.log"
        out(f"embedded broker listening on {broker.bootstrap_servers}")
        env = os.environ | {
            "ROLLWATCH_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "ROLLWATCH_SIGNING_KEY_ID": "demo",
            "ROLLWATCH_SIGNING_KEY": key,
        }
        # The demo's one key signs the ticket (release manager), the commands (worker) and is trusted
        # for both: development mode of docs/trust-model.md.
        settings = load_settings(
            None, bootstrap_servers=broker.bootstrap_servers, signing_key_id="demo", signing_key=key
        )
        asyncio.run(ensure_topics(settings))
        web_port = free_port()
        log = log_path.open("w")  # a file, not a pipe: a chatty worker must never block on a full pipe
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rollwatch.agents",
                "--engine",
                "rollwatch.agents.engine_factory:production_factory",
                "--web-port",
                str(web_port),
                "--data-dir",
                data,
                "--log-level",
                "warning",
                "--session-timeout",
                "3",
                "--rebalance-timeout",
                "3",
                "--name",
                "demo-worker",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        out(f"worker started (pid {worker.pid}; status on http://127.0.0.1:{web_port}/status)")
        traffic = Traffic(
            regression="schema",
            calls_per_second=calls_per_second,
            candidate_share=0.05,
            onset_ms=int(onset_s * 1000),
            duration_ms=int((onset_s + deadline_s) * 1000),
            seed=int(time.time()),
        )
        try:
            code = asyncio.run(_play(settings, traffic, out, deadline_s))
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            log.close()
        if code != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            out("worker log (last lines):\n" + "\n".join(tail))
    out("demo ok: the canary was rolled back" if code == 0 else "demo FAILED")
    return code
