"""SIGKILL the production worker mid-batch and right after its command: one command message, state intact.

Three real worker processes (``rollwatch.agents.engine_factory:production_factory``, signing with
the test keyring's worker key) share one consumer group and changelog:

1. the first folds part A1 of the telemetry, checkpoints it, folds part of A2 and is
   SIGKILLed before A2's checkpoint; its offsets are never committed (long commit interval);
2. the second replays what the first left uncommitted (A1 skipped by the checkpoint's
   offsets, A2 applied once), reads B (the regression), publishes the rollback and
   checkpoints it, and is SIGKILLed at once;
3. the third recovers from the changelog and reads C; it must not publish again.

The expected command comes from an independent oracle: ``rollwatch.replay.replay_events``
over the same events under the same ticket (offline, no worker code). Messages on the
control topic are counted, not a set of ids. A real flag store on that control topic then
applies the command; the same signed bytes published again are acked ``duplicate`` and
change nothing: flags, Redis and the audit (one ``applied``, one ``duplicate``).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from rollwatch.broker import EmbeddedBroker
from rollwatch.commands import RollbackCommand, decode_command
from rollwatch.events import Event, encode_events
from rollwatch.flagstore.redis_sink import RedisFlags
from rollwatch.flagstore.service import FlagStore
from rollwatch.kafka import client_options, ensure_topics, make_producer
from rollwatch.ops.traffic import batches, for_ticket, publish_ticket
from rollwatch.replay import replay_events
from rollwatch.settings import Settings
from rollwatch.synth import Traffic, generate
from rollwatch.tickets import Ticket, ticket_to_json
from tests.agents.harness import WorkerProcess, produce, read_topic, wait_until, write_config
from tests.control.helpers import AckReader, example_ticket, wiped_redis, write_keyring
from tests.reliability.conftest import control_settings_for

pytestmark = pytest.mark.integration

ENGINE = "rollwatch.agents.engine_factory:production_factory"
MINUTE = 60_000
SPAN_MS = 8 * MINUTE
ONSET_MS = 4 * MINUTE
"""The candidate fails schema validation from minute 4 of 8 on (the traffic ends now)."""


def traffic(ticket: Ticket, now_ms: int) -> list[Event]:
    clean = Traffic().base | {"schema": 0.0}  # no noise that could hold json-failures back
    made = Traffic(
        start_ms=now_ms - SPAN_MS,
        duration_ms=SPAN_MS,
        calls_per_second=8,
        candidate_share=0.3,
        base=clean,
        regression="schema",
        onset_ms=ONSET_MS,
        seed=31,
    )
    return list(generate(for_ticket(made, ticket)))


def messages(events: list[Event]) -> list[tuple[bytes, bytes]]:
    return [(e[0].workflow.encode(), encode_events(e)) for e in batches(iter(events), 100)]


def counts(events: list[Event]) -> dict[str, dict[str, int]]:
    """Per route: calls, reviews, complaints; what the engine's status reports."""
    out: dict[str, Counter[str]] = {}
    for event in events:
        kind = {"call": "calls", "review": "reviews", "complaint": "complaints"}[event.type]
        route = getattr(event, "route", None)
        if route is not None:
            out.setdefault(route, Counter())[kind] += 1
    return {route: dict(c) for route, c in out.items()}


def engine_counts(status: dict[str, Any] | None, workflow: str) -> dict[str, dict[str, int]] | None:
    if not status or workflow not in status["workflows"]:
        return None
    routes = status["workflows"][workflow]["engine"]["routes"]
    return {
        name: {k: int(route[k]) for k in ("calls", "reviews", "complaints") if route[k]}
        for name, route in routes.items()
    }


def saved(status: dict[str, Any] | None, workflow: str) -> bool:
    return bool(status and workflow in status["workflows"] and not status["workflows"][workflow]["unsaved"])


def rolled_back(status: dict[str, Any] | None, workflow: str) -> bool:
    """The engine's persisted memory says it rolled back (``last_decisions`` is only the latest judgement)."""
    return bool(status and workflow in status["workflows"] and status["workflows"][workflow]["engine"]["rolled_back"])


@pytest.fixture
async def settings(broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Settings]:
    """Private topics and Redis prefix; the worker's key in a keyring file every process loads."""
    made = control_settings_for(broker.bootstrap_servers)
    assert made.signing_key is not None
    env = f"RW_TEST_OWN_KEY_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.setenv(env, made.signing_key.get_secret_value())  # the worker subprocesses inherit it
    keyring = write_keyring(tmp_path / "keyring.json", made.signing_key_id, env)
    made = made.model_copy(update={"keyring_file": keyring})
    await ensure_topics(made)
    yield made


@pytest.fixture
def spawn(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    config = write_config(settings, tmp_path / "rollwatch.toml")
    with config.open("a", encoding="utf-8") as out:
        out.write(f'keyring_file = "{settings.keyring_file}"\n')
    group = f"rw-{uuid.uuid4().hex[:8]}"
    started: list[WorkerProcess] = []

    def _spawn(name: str, *extra: str) -> WorkerProcess:
        worker = WorkerProcess(config, group, name, tmp_path / f"{name}.log", engine=ENGINE, extra=extra)
        started.append(worker.start())
        return worker

    yield _spawn
    for worker in started:
        worker.kill()
        print(f"----- {worker.name} (last lines) -----\n{worker.tail(80)}")


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    async with wiped_redis(settings) as client:
        yield client


async def committed(settings: Settings, group: str) -> list[int | None]:
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return [
            await consumer.committed(TopicPartition(settings.topic_telemetry, p))
            for p in range(settings.telemetry_partitions)
        ]
    finally:
        await consumer.stop()


async def control_messages(settings: Settings, expect: int) -> list[Any]:
    return list(await read_topic(settings, settings.topic_control, expect=expect, timeout=5))


async def test_sigkill_mid_batch_and_after_the_command_leaves_one_command_message_and_the_state(
    settings: Settings, spawn: Callable[..., WorkerProcess], redis_client: Redis
) -> None:
    ticket = example_ticket()
    wf = ticket.workflow
    await publish_ticket(settings, ticket, ticket_to_json(ticket))  # what `rollwatch ticket publish` does
    now_ms = int(time.time() * 1000)
    events = traffic(ticket, now_ms)
    start = now_ms - SPAN_MS
    a1 = [e for e in events if e.ts_ms < start + 2 * MINUTE]
    a2 = [e for e in events if start + 2 * MINUTE <= e.ts_ms < start + 3 * MINUTE]
    b = [e for e in events if e.ts_ms >= start + 3 * MINUTE]

    # The oracle: what the recorded telemetry decides offline under the same ticket.
    report = replay_events(ticket, [events])
    assert report.events == len(events) and report.duplicates == 0
    expected = [entry.decision for entry in report.timeline if entry.decision.kind in ("rollback", "promote")]
    assert [(d.gate, d.kind) for d in expected] == [("json-failures", "rollback")], "the scenario is not one rollback"
    (oracle,) = expected
    assert oracle.at_ms >= start + ONSET_MS, "replay decided before the regression: A would already breach"

    # 1. A1 folded and checkpointed; A2 folded, not yet checkpointed; SIGKILL. No offset committed.
    first = spawn("w1", "--commit-interval", "600", "--checkpoint-interval", "5")
    await wait_until(first.ready, what="first worker ready", timeout=40)
    await produce(settings, settings.topic_telemetry, messages(a1))
    await wait_until(
        lambda: (s := first.status()) and engine_counts(s, wf) == counts(a1) and saved(s, wf), what="A1 checkpointed"
    )
    await produce(settings, settings.topic_telemetry, messages(a2))
    status = await wait_until(
        lambda: (s := first.status()) and s["totals"]["events"] > len(a1) and s, what="part of A2 folded", interval=0.02
    )
    first.kill()
    assert status["workflows"][wf]["unsaved"], "A2 was checkpointed before the kill: not a mid-batch crash"
    assert status["totals"]["commands"] == 0 and not rolled_back(status, wf)
    assert await committed(settings, first.group) == [None] * settings.telemetry_partitions, (
        "offsets were committed before the kill: the replay path is not exercised"
    )

    # 2. B while nobody runs. The second worker replays A1 (skipped) and A2 (applied once), then decides.
    await produce(settings, settings.topic_telemetry, messages(b))
    second = spawn("w2")
    await wait_until(second.ready, what="second worker ready", timeout=40)
    await wait_until(lambda: engine_counts(second.status(), wf) == counts(a1 + a2 + b), what="A and B applied")
    status = await wait_until(
        lambda: (s := second.status()) and s["totals"]["commands"] == 1 and rolled_back(s, wf) and saved(s, wf) and s,
        what="the rollback checkpointed",
    )
    second.kill()  # right after the command
    engine = status["workflows"][wf]["engine"]
    assert engine["duplicates"] == 0
    assert status["totals"]["replayed"] == len(a1), "the checkpoint's offsets did not skip exactly A1"
    assert status["totals"]["events"] == len(a2) + len(b)
    records = await control_messages(settings, expect=1)
    assert len(records) == 1, f"{len(records)} control messages"
    command = decode_command(records[0].value)
    assert isinstance(command, RollbackCommand) and command.signature is not None
    assert command.command_id == oracle.command_id
    assert (command.workflow, command.reason.gate, command.action) == (wf, oracle.gate, oracle.action)
    assert {str(k): v for k, v in command.flags.items()} == {str(k): v for k, v in oracle.flags.items()}

    # 3. The third recovers, reads more of the regression and judges on: still one message.
    third = spawn("w3")
    await wait_until(third.ready, what="third worker ready", timeout=40)
    c = [
        replace(e, event_id=f"{e.event_id}-c", ts_ms=int(time.time() * 1000))
        for e in b[-50:]  # still failing: the gate stays breached
    ]
    await produce(settings, settings.topic_telemetry, messages(c))
    await wait_until(lambda: engine_counts(third.status(), wf) == counts(a1 + a2 + b + c), what="C applied")
    ticks = (third.status() or {})["totals"]["ticks"]
    await wait_until(lambda: (s := third.status()) and s["totals"]["ticks"] >= ticks + 3, what="judge ticks")
    assert len(await control_messages(settings, expect=1)) == 1, "a restarted worker published the command again"
    status = third.status()
    assert status is not None and status["workflows"][wf]["engine"]["duplicates"] == 0
    assert rolled_back(status, wf), "the recovered engine forgot its rollback"
    assert status["totals"]["commands"] == 0, "the third worker published a command"
    third.check_alive()

    # 4. A flag store on the same control topic applies it; the same signed bytes again change nothing.
    redis = RedisFlags(redis_client, settings.redis_prefix)
    store = FlagStore(settings, redis=redis)
    await store.start()
    try:
        async with AckReader(settings) as acks:
            assert (await acks.wait_for(command.command_id, "flagstore", 20)).status == "applied"
            flags = dict(store.effective(wf) or {})
            in_redis = await redis.read(wf)
            state = store.book.get(wf)
            assert state is not None
            version = state.version
            for flag, value in command.flags.items():
                assert flags[flag] == value
            producer = make_producer(settings, linger_ms=0)
            await producer.start()
            try:  # the bytes the worker published, as a retry or a replay would send them
                await producer.send_and_wait(settings.topic_control, records[0].value, key=records[0].key)
            finally:
                await producer.stop()
            replies = await acks.collect(command.command_id, "flagstore", 2, timeout=20)
        assert [a.status for a in replies] == ["applied", "duplicate"]
        assert store.effective(wf) == flags
        assert await redis.read(wf) == in_redis
        assert store.book.get(wf).version == version  # type: ignore[union-attr]
        audited = [(r.outcome, r.code) for r in store.audit if r.command_id == command.command_id]
        assert audited == [("applied", "applied"), ("duplicate", "duplicate")]
    finally:
        await store.stop()
    assert len(await control_messages(settings, expect=2)) == 2  # the repeat is on the topic, and was ignored
