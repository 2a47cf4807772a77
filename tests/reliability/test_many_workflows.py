"""10,000 workflows x 2 arms through one real worker process (issue 8, load at scale).

Every workflow has the example ticket (published on the releases topic) and traffic on
both arms; a handful get a candidate regression that breaches the ticket's ``error-rate``
gate, and as many get as much candidate traffic with an error rate under the threshold
(so "nothing else rolls back" is checked where the gate has enough samples to decide).
The worker must count every event of every workflow on the right route and issue
exactly one rollback per regressed workflow, and no other command. Throughput, lag and
memory at this scale are measured in ``bench/bench_load_worker.py``, not here.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rollwatch.broker import EmbeddedBroker
from rollwatch.commands import decode_command
from rollwatch.kafka import client_options, ensure_topics, make_producer
from rollwatch.settings import Settings, load_settings
from rollwatch.tickets import load_ticket, ticket_to_json
from tests.agents.harness import ROOT, WorkerProcess, read_topic, write_config
from tests.releases import signed_release

pytestmark = pytest.mark.integration

WORKFLOWS = 10_000
CONTROL_CALLS, CANDIDATE_CALLS = 12, 4
EXTRA_CANDIDATE = 120
REGRESSED = frozenset(f"wf-{i:05d}" for i in (17, 2_501, 5_003, 7_777, 9_998))
NEAR_MISS = frozenset(f"wf-{i:05d}" for i in (18, 2_502, 5_004, 7_778, 9_999))
ENGINE = "rollwatch.gates.engine:EngineFactoryImpl"
EXAMPLE = ROOT / "examples" / "support-summary.ticket.yaml"


def calls(workflow: str, route: str, arm: str, count: int, errors: int, start: int, now: float) -> list[dict[str, Any]]:
    return [
        {
            "type": "call",
            "event_id": f"{workflow}-{arm}-{start + i}",
            "ts": now + (start + i) / 1000,
            "workflow": workflow,
            "route": route,
            "arm": arm,
            "latency_ms": 400.0 + (i * 37) % 300,
            "status": "error" if i < errors else "ok",
            "schema_valid": True,
            "safety_blocked": False,
            "task_success": i >= errors,
            "cost_usd": 0.002,
        }
        for i in range(count)
    ]


async def produce_all(settings: Settings, messages: list[tuple[str, bytes, bytes]]) -> dict[int, int]:
    """Send (topic, key, value) records; the next offset of each telemetry partition, from the acks."""
    producer = make_producer(settings, linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    ends: dict[int, int] = {}
    try:
        futures = [(topic, await producer.send(topic, value, key=key)) for topic, key, value in messages]
        for topic, future in futures:
            meta = await future
            if topic == settings.topic_telemetry:
                ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


async def committed(settings: Settings, group: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {
            p: await consumer.committed(TopicPartition(settings.topic_telemetry, p)) or 0
            for p in range(settings.telemetry_partitions)
        }
    finally:
        await consumer.stop()


def full_status(worker: WorkerProcess) -> dict[str, Any]:
    """``/status`` of 10,000 workflows is tens of MB: a longer timeout than the harness's."""
    url = f"http://127.0.0.1:{worker.web_port}/status"
    with urllib.request.urlopen(url, timeout=120) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


async def test_ten_thousand_workflows_are_all_counted_and_only_the_regressed_roll_back(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    roles = ("telemetry", "control", "acks", "deadletter", "releases", "flags")
    settings = load_settings(
        None,
        bootstrap_servers=own_broker.bootstrap_servers,
        telemetry_partitions=4,
        control_partitions=2,
        signing_key_id="test-key",
        signing_key=uuid.uuid4().hex,  # signs the tickets; the worker trusts it (development mode)
        **{f"topic_{role}": f"m{tag}.{role}" for role in roles},
    )
    await ensure_topics(settings)
    base = load_ticket(EXAMPLE)
    control, candidate = base.control.route, base.candidate.route
    names = [f"wf-{i:05d}" for i in range(WORKFLOWS)]
    tickets = [
        (
            settings.topic_releases,
            name.encode(),
            signed_release(settings, name, ticket_to_json(base.model_copy(update={"workflow": name}))),
        )
        for name in names
    ]
    now = time.time()
    telemetry = []
    for name in names:
        events = calls(name, control, "control", CONTROL_CALLS, 0, 0, now)
        events += calls(name, candidate, "candidate", CANDIDATE_CALLS, 0, 0, now)
        telemetry.append((settings.topic_telemetry, name.encode(), orjson.dumps(events)))
    for name in sorted(REGRESSED | NEAR_MISS):
        errors = 36 if name in REGRESSED else 4  # 36/124 = 29% and 4/124 = 3.2% against a 5% threshold
        events = calls(name, candidate, "candidate", EXTRA_CANDIDATE, errors, CANDIDATE_CALLS, now)
        telemetry.append((settings.topic_telemetry, name.encode(), orjson.dumps(events)))
    await produce_all(settings, tickets)
    ends = await produce_all(settings, telemetry)
    total_events = WORKFLOWS * (CONTROL_CALLS + CANDIDATE_CALLS) + len(REGRESSED | NEAR_MISS) * EXTRA_CANDIDATE

    group = f"many-{tag}"
    config = write_config(settings, tmp_path / "rollwatch.toml")
    # The production session timeout: installing 10,000 tickets and their first judgements
    # keep the loop busy for seconds at a time on a loaded 2-core machine.
    extra = ("--session-timeout", "10")
    worker = WorkerProcess(config, group, "w1", tmp_path / "w1.log", engine=ENGINE, extra=extra).start()
    try:

        async def consumed_all() -> bool:
            worker.check_alive()
            done = await committed(settings, group)
            return all(done.get(p, 0) >= end for p, end in ends.items())

        deadline = time.monotonic() + 150
        while not await consumed_all():
            assert time.monotonic() < deadline, f"not all telemetry committed:\n{worker.tail()}"
            await asyncio.sleep(0.5)

        # Commands are delivered before the offsets of their batch are committed: all are out.
        status = full_status(worker)
        records = await read_topic(settings, settings.topic_control, expect=len(REGRESSED), timeout=10)
    finally:
        worker.stop()
        print(f"----- worker (last lines) -----\n{worker.tail(60)}")

    commands = [decode_command(r.value) for r in records]
    assert sorted(c.workflow for c in commands) == sorted(REGRESSED)
    assert {(c.reason.gate, c.action) for c in commands} == {("error-rate", "restore_route_and_prompt")}
    assert all(r.key == c.workflow.encode() for r, c in zip(records, commands, strict=True))

    totals = status["totals"]
    assert totals["events"] == total_events
    assert totals["deadletters"] == 0
    assert totals["commands"] == len(REGRESSED)
    workflows = status["workflows"]
    assert len(workflows) == WORKFLOWS
    wrong = {}
    for name in names:
        routes = workflows[name]["engine"]["routes"]
        extra_calls = EXTRA_CANDIDATE if name in REGRESSED | NEAR_MISS else 0
        got = (routes.get(control, {}).get("calls"), routes.get(candidate, {}).get("calls"))
        if got != (CONTROL_CALLS, CANDIDATE_CALLS + extra_calls) or len(routes) != 2:
            wrong[name] = routes
    assert not wrong, f"{len(wrong)} workflows miscounted, e.g. {list(wrong.items())[:3]}"
    rolled_back = {name for name in names if workflows[name]["engine"]["rolled_back"]}
    assert rolled_back == REGRESSED
