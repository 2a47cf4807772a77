"""The worker core without a broker: checkpoints, dead letters, replay, dedup and delivery order."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from faust.types import TP
from pydantic import SecretStr

from rollwatch.agents.app import Pipeline, QuietMonitor, WorkerOptions, _faust_config
from rollwatch.agents.checkpoint import decode_checkpoint, encode_checkpoint
from rollwatch.agents.cli import load_engine_factory
from rollwatch.agents.deadletter import MAX_RAW, dead_letter
from rollwatch.agents.errors import CheckpointError, EngineSpecError
from rollwatch.agents.metrics import Metrics
from rollwatch.agents.observe import status
from rollwatch.agents.ports import ApplyStats, Emission, GateReading
from rollwatch.agents.records import Outgoing, SourceRecord
from rollwatch.agents.runtime import BoundedSet, Runtime, Topics
from rollwatch.agents.tickets import TicketFeed
from rollwatch.events import Event, encode_events
from rollwatch.settings import Settings, load_settings
from rollwatch.trust import keyring_from_settings, signing_key_from_settings
from rollwatch.trust.releases import retire_record
from tests.agents.fake_engine import FakeEngine, FakeEngineFactory, command_id, ticket
from tests.agents.harness import call
from tests.releases import signed_release

TOPICS = Topics("tel", "ctl", "dlq", "rel", "state-changelog")
KEYS = Settings(signing_key_id="release-key", signing_key=SecretStr("runtime-test-secret"), principal="release-bot")


def release(workflow: str, raw: bytes) -> bytes:
    return signed_release(KEYS, workflow, raw)


def runtime(factory: Any = None, partitions: int = 4) -> Runtime:
    rt = Runtime(
        factory or FakeEngineFactory(),
        topics=TOPICS,
        partitions=partitions,
        metrics=Metrics(),
        worker="t",
        keyring=keyring_from_settings(KEYS),
    )
    rt.on_assigned(range(partitions))
    rt.on_recovered([])
    return rt


def message(offset: int, events: Sequence[Event], partition: int = 1) -> SourceRecord:
    return SourceRecord("tel", partition, offset, events[0].workflow.encode(), encode_events(events))


def test_checkpoint_round_trip_and_corruption() -> None:
    data = encode_checkpoint(3, {3: 41, 0: 7}, b'{"engine": 1}')
    checkpoint = decode_checkpoint(data)
    assert (checkpoint.home, checkpoint.applied, checkpoint.engine) == (3, {0: 7, 3: 41}, b'{"engine": 1}')
    for bad in (b"", b"RWC1", b"XXXX" + data[4:], data[:12]):
        with pytest.raises(CheckpointError):
            decode_checkpoint(bad)


def test_dead_letters_keep_text_as_text_binary_as_base64_and_cut_huge_raw() -> None:
    source = SourceRecord("tel", 2, 99, b"wf", b"")
    text = orjson.loads(dead_letter("dlq", source, reason="r", field="[3].ts", index=3, raw=b'{"a":').value)
    assert text["raw"] == '{"a":' and text["raw_encoding"] == "utf-8"
    assert text["source"] == {"topic": "tel", "partition": 2, "offset": 99, "index": 3}
    assert text["field"] == "[3].ts"
    binary = orjson.loads(dead_letter("dlq", source, reason="r", field="", index=None, raw=b"\xff\x00").value)
    assert binary["raw_encoding"] == "base64" and base64.b64decode(binary["raw"]) == b"\xff\x00"
    assert binary["field"] is None
    huge = orjson.loads(dead_letter("dlq", source, reason="r", field=None, index=None, raw=b"x" * (MAX_RAW + 10)).value)
    assert huge["raw_truncated"] is True and huge["raw_size"] == MAX_RAW + 10 and len(huge["raw"]) == MAX_RAW


def test_replayed_messages_are_skipped_after_a_restore() -> None:
    """State ahead of committed offsets (crash between checkpoint and commit) must not double count."""
    first = runtime()
    records = [message(i, [call(f"e{i}", "wf", status="error")]) for i in range(3)]
    fold = first.fold(records)
    checkpoints = first.checkpoint(fold.touched)
    assert [(c.topic, c.partition, c.key) for c in checkpoints] == [("state-changelog", 1, b"wf")]

    second = Runtime(FakeEngineFactory(), topics=TOPICS, partitions=4, metrics=Metrics(), worker="t2")
    second.on_assigned({1})
    second.on_recovered([(c.key or b"", c.value) for c in checkpoints])
    again = second.fold([*records, message(3, [call("e3", "wf", status="error")])])
    engine = second.slots["wf"].engine
    assert isinstance(engine, FakeEngine)
    assert engine.counts["candidate"]["errors"] == 4
    assert engine.duplicates == 0
    assert second.totals["replayed"] == 3 and again.events == 1


def test_lost_offsets_reset_kept_engines_but_not_restored_ones() -> None:
    """A recreated log (offsets gone) must not make a kept engine skip the new log's first messages."""
    kept = runtime()
    kept.fold([message(i, [call(f"e{i}", "wf", status="error")]) for i in range(3)])
    checkpoint = kept.checkpoint(kept.slots.values())
    kept.on_assigned(range(4))  # a rebalance that keeps the partition
    kept.on_recovered([])
    kept.on_offsets_lost({1})
    kept.fold([message(0, [call("n0", "wf", status="error")])])  # offset 0 of the new log
    engine = kept.slots["wf"].engine
    assert isinstance(engine, FakeEngine) and engine.counts["candidate"]["errors"] == 4

    restored = Runtime(FakeEngineFactory(), topics=TOPICS, partitions=4, metrics=Metrics(), worker="t2")
    restored.on_assigned({1})
    restored.on_recovered([(c.key or b"", c.value) for c in checkpoint])
    restored.on_offsets_lost({1})  # never committed: the replay must still be skipped
    restored.fold([message(i, [call(f"e{i}", "wf", status="error")]) for i in range(3)])
    engine = restored.slots["wf"].engine
    assert isinstance(engine, FakeEngine) and engine.counts["candidate"]["errors"] == 3 and engine.duplicates == 0


def test_engines_of_partitions_assigned_elsewhere_are_dropped_and_not_restored() -> None:
    rt = runtime()
    rt.fold([message(0, [call("a", "wf-1")], partition=1), message(0, [call("b", "wf-2")], partition=2)])
    state = {c.key or b"": c.value for c in rt.checkpoint(rt.slots.values())}
    rt.on_assigned({2})
    assert set(rt.slots) == {"wf-2"}
    rt.on_recovered(state.items())
    assert set(rt.slots) == {"wf-2"}


def test_bad_items_are_dead_lettered_and_the_rest_applied() -> None:
    rt = runtime()
    good = encode_events([call("g1", "wf"), call("g2", "wf")])
    batch = good[:-1] + b',{"type":"call","event_id":"x"}]'
    fold = rt.fold(
        [
            SourceRecord("tel", 0, 5, b"wf", batch),
            SourceRecord("tel", 0, 6, b"wf", b"\x00\x01"),
            SourceRecord("tel", 0, 7, None, None),
        ]
    )
    assert fold.events == 2
    letters = [orjson.loads(d.value) for d in fold.deadletters]
    assert [(x["source"]["offset"], x["source"]["index"]) for x in letters] == [(5, 2), (6, None), (7, None)]
    assert [d.key for d in fold.deadletters] == [b"wf", b"wf", None]
    assert letters[0]["field"].startswith("[2].")


def test_events_stamped_far_ahead_of_the_receiver_are_dead_lettered_alone() -> None:
    rt = runtime()
    now = int(time.time() * 1000)
    fold = rt.fold([message(0, [call("now", "wf", ts_ms=now), call("ahead", "wf", ts_ms=now + 3_600_000)])])
    assert fold.events == 1
    (letter,) = [orjson.loads(d.value) for d in fold.deadletters]
    assert letter["field"] == "[1].ts" and "ahead of the receiver's clock" in letter["reason"]
    assert letter["source"]["offset"] == 0 and letter["source"]["index"] == 1
    assert orjson.loads(letter["raw"])["event_id"] == "ahead"  # the refused item, re-encoded


@dataclass
class Repeater:
    """An engine that emits the same command at every evaluation (the worker must publish it once)."""

    inner: FakeEngine
    emission: Emission | None = None

    @property
    def workflow(self) -> str:
        return self.inner.workflow

    def set_ticket(self, raw: bytes) -> None:
        self.inner.set_ticket(raw)

    def apply(self, events: Sequence[Event]) -> ApplyStats:
        stats = self.inner.apply(events)
        emissions = self.inner.evaluate(10**13)
        if emissions:
            self.emission = emissions[0]
        return stats

    def evaluate(self, now_ms: int, *, backlog: bool = False) -> list[Emission]:
        return [self.emission] if self.emission else []

    def readings(self) -> list[GateReading]:
        return []

    def status(self) -> dict[str, Any]:
        return {}

    def to_bytes(self) -> bytes:
        return self.inner.to_bytes()


@dataclass
class RepeaterFactory:
    def new(self, workflow: str) -> Repeater:
        return Repeater(FakeEngine(workflow))

    def restore(self, data: bytes) -> Repeater:
        return Repeater(FakeEngineFactory().restore(data))


def test_a_command_id_is_published_once_per_process() -> None:
    rt = runtime(RepeaterFactory())
    rt.tickets["wf"] = ticket(max_candidate_errors=1)
    fold = rt.fold([message(0, [call("e", "wf", status="error")])])
    first = rt.judge(fold.touched, 0)
    assert [orjson.loads(c.value)["command_id"] for c in first.commands] == [
        command_id("wf", "rel-1", 1, "candidate-errors")
    ]
    assert rt.judge(rt.slots.values(), 1).commands == []
    assert rt.judge(rt.slots.values(), 2).commands == []


def test_bounded_set_forgets_the_oldest() -> None:
    seen = BoundedSet(2)
    for key in ("a", "b", "c"):
        seen.add(key)
    assert "a" not in seen and "b" in seen and "c" in seen and len(seen) == 2


def test_tickets_bad_key_tombstone_and_foreign_workflow() -> None:
    rt = runtime(partitions=4)
    assert rt.on_ticket(SourceRecord("rel", 0, 1, None, b"{}"))[0].topic == "dlq"
    assert rt.on_ticket(SourceRecord("rel", 0, 2, b"\xff", b"{}"))
    assert rt.on_ticket(SourceRecord("rel", 0, 3, b"wf", release("wf", ticket("rel-1", 2)))) == []
    assert rt.slots["wf"].ticket == ticket("rel-1", 2)
    bad = rt.on_ticket(SourceRecord("rel", 0, 4, b"wf", release("wf", b"id: [unclosed")))
    assert len(bad) == 1 and orjson.loads(bad[0].value)["source"]["offset"] == 4
    assert rt.slots["wf"].ticket == ticket("rel-1", 2), "a bad ticket must leave the last good one installed"
    # Unsigned, a tombstone, signed by an untrusted key, an older revision, keyed by another
    # workflow: refused, dead-lettered with the reason, and the ticket in force stays.
    stranger = Settings(signing_key_id="release-key", signing_key=SecretStr("guessed"), principal="release-bot")
    refused = {
        "unsigned": ticket("rel-1", 3),
        "unsigned ": None,
        "bad_signature": signed_release(stranger, "wf", ticket("rel-1", 3)),
        "older_revision": release("wf", ticket("rel-1", 1)),
        "mismatch": release("elsewhere", ticket("rel-1", 3)),
    }
    for offset, (code, value) in enumerate(refused.items(), start=10):
        out = rt.on_ticket(SourceRecord("rel", 0, offset, b"wf", value))
        assert [o.topic for o in out] == ["dlq"], code
        assert f"ticket refused ({code.strip()})" in orjson.loads(out[0].value)["reason"]
        assert rt.slots["wf"].ticket == ticket("rel-1", 2) and "wf" in rt.tickets, code
        assert status(rt)["ticket_refusals"]["wf"]["code"] == code.strip()
    # A signed retirement takes the ticket out of force.
    retired = retire_record("wf", "rel-1", 2, signing_key_from_settings(KEYS), datetime.now(UTC))  # type: ignore[arg-type]
    assert rt.on_ticket(SourceRecord("rel", 0, 20, b"wf", retired)) == []
    assert "wf" not in rt.tickets and "wf" not in status(rt)["ticket_refusals"]
    rt.on_assigned({p for p in range(4) if p != rt.key_partition("other")})
    assert rt.on_ticket(SourceRecord("rel", 0, 21, b"other", release("other", ticket()))) == []
    assert "other" not in rt.slots and "other" in rt.tickets


@dataclass
class RecordingProducer:
    """Resolves each send's future only when the test says so, and logs every step."""

    log: list[str] = field(default_factory=list)
    futures: list[tuple[Outgoing, asyncio.Future[None]]] = field(default_factory=list)

    async def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None, *_: Any) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append((Outgoing(topic, key, value, partition), future))
        self.log.append(f"send {topic} {partition} {key!r}")
        return future

    async def ack_all_soon(self) -> None:
        """Broker stand-in: acks whatever is in flight, a little later."""
        while True:
            await asyncio.sleep(0.001)
            for out, future in self.futures:
                if not future.done():
                    self.log.append(f"acked {out.topic} {out.partition} {out.key!r}")
                    future.set_result(None)


@dataclass
class FakeApp:
    producer: RecordingProducer
    rebalancing: bool = False


@dataclass(frozen=True)
class FakeMessage:
    """The fields of a faust ``Message`` the pipeline reads (timestamp in seconds)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None


class FakeEvent:
    def __init__(self, record: SourceRecord) -> None:
        self.message = FakeMessage(
            record.topic, record.partition, record.offset, record.key, record.value, time.time() - 0.01
        )


@dataclass
class FakeStream:
    log: list[str]

    async def ack(self, event: FakeEvent) -> None:
        self.log.append(f"ack {event.message.offset}")


async def test_delivery_order_commands_then_checkpoints_then_acks() -> None:
    producer = RecordingProducer()
    rt = runtime()
    settings = load_settings(None)
    pipeline = Pipeline(FakeApp(producer), rt, TicketFeed(settings), WorkerOptions())
    pipeline.feed.ready.set()
    rt.tickets["wf-a"] = ticket(max_candidate_errors=1)
    events = [
        FakeEvent(message(0, [call("a1", "wf-a", status="error")])),
        FakeEvent(message(1, [call("b1", "wf-b")])),
        FakeEvent(message(2, [call("c1", "wf-c")])),
        FakeEvent(SourceRecord("tel", 1, 3, b"wf-a", b"not json")),
    ]
    broker = asyncio.ensure_future(producer.ack_all_soon())
    try:
        await pipeline.consume(FakeStream(producer.log), events)
    finally:
        broker.cancel()
    log = producer.log
    command = log.index("send ctl None b'wf-a'")
    command_acked = log.index("acked ctl None b'wf-a'")
    changelog = [i for i, line in enumerate(log) if line.startswith("send state-changelog")]
    acks = [i for i, line in enumerate(log) if line.startswith("ack ")]
    assert len(changelog) == 3 and len(acks) == 4
    assert command < command_acked < min(changelog), "state must not be written before its command is acked"
    assert max(i for i, line in enumerate(log) if line.startswith("acked")) < min(acks), "acked before delivery"
    # All three workflows share partition 1: the last checkpoint goes alone, after the others are acked.
    last = max(changelog)
    assert all(log.index(f"acked state-changelog 1 {k!r}") < last for k in (b"wf-a", b"wf-b"))
    assert any(line.startswith("send dlq") for line in log[: min(acks)])


def test_engine_spec_loading() -> None:
    assert isinstance(load_engine_factory("tests.agents.fake_engine:factory"), FakeEngineFactory)
    assert isinstance(load_engine_factory("tests.agents.fake_engine:FakeEngineFactory"), FakeEngineFactory)
    for spec in ("nope", "no.such.module:x", "tests.agents.fake_engine:missing", "tests.agents.fake_engine:RECENT_IDS"):
        with pytest.raises(EngineSpecError):
            load_engine_factory(spec)


def cadence_pipeline(producer: RecordingProducer, interval: float) -> tuple[Pipeline, Runtime]:
    rt = runtime()
    options = WorkerOptions(checkpoint_interval=interval)
    pipeline = Pipeline(FakeApp(producer), rt, TicketFeed(load_settings(None)), options)
    return pipeline, rt


async def test_batches_between_checkpoints_stay_unacked_until_the_timer_writes_them() -> None:
    """A checkpoint covers several batches: no event is acked before the record holding it is acked."""
    producer = RecordingProducer()
    pipeline, rt = cadence_pipeline(producer, interval=0.3)
    stream = FakeStream(producer.log)
    broker = asyncio.ensure_future(producer.ack_all_soon())
    try:
        await pipeline.consume(stream, [FakeEvent(message(0, [call("a", "wf-a")]))])  # first batch: due at once
        assert producer.log.count("ack 0") == 1
        await pipeline.consume(stream, [FakeEvent(message(1, [call("b", "wf-b")]))])
        await pipeline.consume(stream, [FakeEvent(SourceRecord("tel", 1, 2, b"wf-a", b"not json"))])
        assert not any(line in ("ack 1", "ack 2") for line in producer.log), "acked before its checkpoint"
        assert [w for w, s in rt.slots.items() if s.dirty] == ["wf-b"]
        assert status(rt)["workflows"]["wf-b"]["unsaved"] is True
        await asyncio.sleep(0.5)  # no further batch: the timer takes the checkpoint
    finally:
        broker.cancel()
    log = producer.log
    written = log.index("acked state-changelog 1 b'wf-b'", log.index("ack 0"))
    assert log.index("ack 1") > written and log.index("ack 2") > written
    assert log.index("ack 2") > max(i for i, line in enumerate(log) if line.startswith("acked dlq"))
    assert not rt.dirty and status(rt)["workflows"]["wf-b"]["unsaved"] is False


async def test_a_command_checkpoints_every_unsaved_workflow_at_once() -> None:
    producer = RecordingProducer()
    pipeline, rt = cadence_pipeline(producer, interval=60)
    rt.tickets["wf-a"] = ticket(max_candidate_errors=1)
    stream = FakeStream(producer.log)
    broker = asyncio.ensure_future(producer.ack_all_soon())
    try:
        await pipeline.consume(stream, [FakeEvent(message(0, [call("x", "wf-x")]))])  # due: the first checkpoint
        await pipeline.consume(stream, [FakeEvent(message(1, [call("b", "wf-b")]))])  # waits for the next one
        assert "ack 1" not in producer.log
        await pipeline.consume(stream, [FakeEvent(message(2, [call("a", "wf-a", status="error")]))])
    finally:
        broker.cancel()
    log = producer.log
    command_acked = log.index("acked ctl None b'wf-a'")
    second = [i for i, line in enumerate(log) if line.startswith("send state-changelog") and i > command_acked]
    assert sorted(log[i].split()[-1] for i in second) == ["b'wf-a'", "b'wf-b'"]
    assert log.index("ack 1") > max(second) and log.index("ack 2") > max(second)
    assert rt.metrics.registry.get_sample_value("rollwatch_detection_latency_seconds_count") == 1


async def test_an_interrupted_batch_halts_checkpoints_and_acks() -> None:
    """Cancelled mid-delivery, the engine's memory says a command went out: nothing may make it durable."""
    producer = RecordingProducer()
    pipeline, rt = cadence_pipeline(producer, interval=0)
    rt.tickets["wf-a"] = ticket(max_candidate_errors=1)
    stream = FakeStream(producer.log)
    batch = asyncio.ensure_future(
        pipeline.consume(stream, [FakeEvent(message(0, [call("a", "wf-a", status="error")]))])
    )
    await asyncio.sleep(0.01)  # the command is in flight and never acked
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    broker = asyncio.ensure_future(producer.ack_all_soon())
    try:
        await pipeline.consume(stream, [FakeEvent(message(1, [call("b", "wf-b")]))])
        await pipeline.tick()
    finally:
        broker.cancel()
    assert pipeline.halted
    assert not [line for line in producer.log if line.startswith(("ack ", "send state-changelog"))]


def test_the_timer_sweep_visits_every_workflow_in_turn_within_its_budget() -> None:
    rt = runtime()
    rt.fold([message(i, [call(f"e{i}", f"wf-{i}")], partition=i % 4) for i in range(5)])
    names = [f"wf-{i}" for i in range(5)]
    assert list(rt.slots) == names
    # No budget: one workflow per tick (a round always advances), in turn.
    assert [slot.workflow for slot in rt.sweep(0.0)] == ["wf-0"]
    assert [slot.workflow for slot in rt.sweep(0.0)] == ["wf-1"]
    # A workflow that appears mid-round waits for the next round; a generous budget ends the round.
    rt.fold([message(9, [call("e9", "wf-new")], partition=1)])
    assert [slot.workflow for slot in rt.sweep(60.0)] == ["wf-2", "wf-3", "wf-4"]
    assert [slot.workflow for slot in rt.sweep(60.0)] == [*names, "wf-new"]


def test_the_worker_runs_faust_without_its_per_message_monitor(kafka_settings: Settings) -> None:
    config = _faust_config(kafka_settings, WorkerOptions(), partitions=4)
    monitor = config["monitor"]
    assert isinstance(monitor, QuietMonitor)
    tp = TP("tel", 0)
    monitor.on_message_in(tp, 7, object())
    monitor.on_stream_event_in(tp, 7, object(), object())
    monitor.on_stream_event_out(tp, 7, object(), object(), None)
    assert (monitor.messages_received_total, monitor.events_total, monitor.messages_active) == (0, 0, 0)


def test_the_worker_web_endpoint_binds_loopback_unless_told(kafka_settings: Settings) -> None:
    assert _faust_config(kafka_settings, WorkerOptions(), partitions=4)["web_bind"] == "127.0.0.1"
    everywhere = kafka_settings.model_copy(update={"web_host": "0.0.0.0"})
    assert _faust_config(everywhere, WorkerOptions(), partitions=4)["web_bind"] == "0.0.0.0"
    flag = WorkerOptions(web_bind="10.1.2.3")  # `rollwatch worker --web-host` wins over the setting
    assert _faust_config(everywhere, flag, partitions=4)["web_bind"] == "10.1.2.3"
