"""Spans through the Collector's way in and calls through the emitter's way in reach the same rollback.

Eight minutes of traffic on the support-summary ticket (the candidate breaks its output
schema from minute 2 on) are put on the embedded broker three ways, each for a worker of
its own running the production engine:

* ``telemetry``: the calls as rollwatch telemetry events, as the emitter publishes them;
* ``otlp_proto`` and ``otlp_json``: the same calls as GenAI client spans built with the
  ``opentelemetry-proto`` classes, 200 per message as the Collector's Kafka exporter
  writes them, on the OTLP topic. The spans carry only what instrumentation knows plus
  the ``rollwatch.*`` outcome attributes: the workflow is the resource's ``service.name``,
  the route is found from the ticket's model ids, and the cost from the ticket's pricing.

Each worker must apply every call once and publish exactly the commands an offline replay
of the telemetry decides: same command ids, gates, actions and flags.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import pytest

from rollwatch.broker import EmbeddedBroker
from rollwatch.commands import decode_command
from rollwatch.events import CallEvent, encode_events
from rollwatch.kafka import ensure_topics, make_producer
from rollwatch.ops.traffic import batches, for_ticket, publish_ticket
from rollwatch.replay import replay_events
from rollwatch.settings import Settings
from rollwatch.synth import Traffic, generate
from rollwatch.tickets import Ticket, ticket_to_json
from tests.agents.harness import WorkerProcess, produce, read_topic, wait_until, write_config
from tests.control.helpers import example_ticket
from tests.otlp.spans import call_span, otlp_json, otlp_proto, traces
from tests.reliability.conftest import control_settings_for

pytestmark = pytest.mark.integration

ENGINE: Final = "rollwatch.agents.engine_factory:production_factory"
BEHIND_MS: Final = 8 * 60_000
Outcome = tuple[str, str, str, dict[str, Any]]


def instrumented(ticket: Ticket, now_ms: int) -> list[CallEvent]:
    """Synthetic calls with what a traced call has: hex ids, provider, model, tokens, and the cost they price to."""
    clean = Traffic().base | {"schema": 0.0, "complaint": 0.0}
    traffic = Traffic(
        start_ms=now_ms - BEHIND_MS,
        duration_ms=BEHIND_MS,
        calls_per_second=8,
        candidate_share=0.3,
        review_share=0.0,
        base=clean,
        regression="schema",
        onset_ms=2 * 60_000,
        seed=17,
    )
    calls: list[CallEvent] = []
    for seq, event in enumerate(generate(for_ticket(traffic, ticket))):
        assert isinstance(event, CallEvent)
        route = ticket.candidate if event.route == ticket.candidate.route else ticket.control
        assert route.pricing is not None
        trace, span = (seq + 1).to_bytes(16, "big").hex(), (seq + 1).to_bytes(8, "big").hex()
        output_tokens = 300
        spent = event.cost_usd * 1e6 - output_tokens * route.pricing.output_per_million_usd
        input_tokens = max(0, round(spent / route.pricing.input_per_million_usd))
        price = (
            input_tokens * route.pricing.input_per_million_usd + output_tokens * route.pricing.output_per_million_usd
        )
        calls.append(
            replace(
                event,
                event_id=f"{trace}-{span}",
                trace_id=trace,
                latency_ms=round(event.latency_ms, 3),  # whole nanoseconds in a span
                provider=route.provider,
                model=route.model_id,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=price / 1e6,
            )
        )
    return calls


def replayed(ticket: Ticket, calls: list[CallEvent]) -> dict[str, Outcome]:
    report = replay_events(ticket, [list(calls)])
    assert report.events == len(calls) and report.duplicates == 0 and report.late == 0
    return {
        entry.decision.command_id: (
            ticket.workflow,
            entry.decision.gate,
            entry.decision.action,
            {str(k): v for k, v in entry.decision.flags.items()},
        )
        for entry in report.timeline
        if entry.decision.kind in ("rollback", "promote")
    }


async def publish(settings: Settings, way: str, ticket: Ticket, calls: list[CallEvent]) -> None:
    await publish_ticket(settings, ticket, ticket_to_json(ticket))
    if way == "telemetry":
        messages = [(ticket.workflow.encode(), encode_events(b)) for b in batches(iter(calls), 100)]
        await produce(settings, settings.topic_telemetry, messages)
        return
    encode = otlp_proto if way == "otlp_proto" else otlp_json
    resource = {"service.name": ticket.workflow, "telemetry.sdk.language": "python"}
    producer = make_producer(settings)
    await producer.start()
    try:
        # Unkeyed, as the exporter writes by default; one partition, so arrival follows event time.
        futures = [
            await producer.send(
                settings.topic_otlp or "", encode(traces([(resource, [call_span(c) for c in b])])), partition=0
            )
            for b in batches(iter(calls), 200)
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()
        print(f"----- {worker.name} (last lines) -----\n{worker.tail(60)}")


async def decide(
    broker: EmbeddedBroker,
    tmp_path: Path,
    way: str,
    ticket: Ticket,
    calls: list[CallEvent],
    workers: list[WorkerProcess],
) -> dict[str, Outcome]:
    """Run one worker over the calls sent ``way``; the commands it publishes."""
    tag = uuid.uuid4().hex[:8]
    settings = control_settings_for(broker.bootstrap_servers).model_copy(update={"topic_otlp": f"o{tag}.otlp"})
    await ensure_topics(settings)
    await publish(settings, way, ticket, calls)
    assert settings.signing_key is not None  # write_config passes the key: the production engine signs
    config = write_config(settings, tmp_path / f"{way}.toml")
    with config.open("a", encoding="utf-8") as out:
        out.write(f'topic_otlp = "{settings.topic_otlp}"\n')
    worker = WorkerProcess(config, f"rw-{tag}", f"w-{way}", tmp_path / f"{way}.log", engine=ENGINE)
    workers.append(worker.start())
    await wait_until(worker.ready, what=f"{way} worker ready", timeout=40)
    status = await wait_until(
        lambda: (s := worker.status()) and s["totals"]["events"] >= len(calls) and s,
        what=f"{way}: calls applied",
        timeout=60,
    )
    engine = status["workflows"][ticket.workflow]["engine"]
    assert status["totals"]["events"] == len(calls)
    assert engine["duplicates"] == 0 and status["totals"]["deadletters"] == 0
    ticks = status["totals"]["ticks"]
    await wait_until(lambda: (s := worker.status()) and s["totals"]["ticks"] >= ticks + 2, what="judge ticks")
    records = await read_topic(settings, settings.topic_control, expect=1)
    commands = [decode_command(r.value) for r in records]
    got: dict[str, Outcome] = {
        c.command_id: (c.workflow, c.reason.gate, c.action, {str(k): v for k, v in c.flags.items()}) for c in commands
    }
    assert len(got) == len(commands), f"{way}: a command id was published twice"
    if way != "telemetry":
        metrics = worker.metrics()
        assert f'rollwatch_otlp_spans_total{{result="call"}} {float(len(calls))}' in metrics
        assert "rollwatch_otlp_unpriced_calls_total 0.0" in metrics
    worker.kill()
    return got


async def test_spans_in_both_encodings_and_telemetry_reach_the_same_rollback(
    broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    ticket = example_ticket()
    calls = instrumented(ticket, int(time.time() * 1000))
    expected = replayed(ticket, calls)
    assert [(gate, action) for _, gate, action, _ in expected.values()] == [
        ("json-failures", "restore_route_and_prompt")
    ]
    for way in ("telemetry", "otlp_proto", "otlp_json"):
        got = await decide(broker, tmp_path, way, ticket, calls, workers)
        assert got == expected, f"{way}: worker {got} != replay {expected}"
