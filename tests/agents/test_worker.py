"""The worker end to end over the real embedded broker, with the fake engine, in subprocesses."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
import pytest

from rollwatch.commands import decode_command
from rollwatch.kafka import ensure_topics
from rollwatch.settings import Settings
from tests.agents.conftest import Spawn
from tests.agents.fake_engine import command_id, ticket
from tests.agents.harness import WorkerProcess, call, produce, produce_events, read_topic, wait_until

pytestmark = pytest.mark.integration


def engine(status: dict[str, Any] | None, workflow: str) -> dict[str, Any] | None:
    if not status or workflow not in status["workflows"]:
        return None
    result: dict[str, Any] = status["workflows"][workflow]["engine"]
    return result


def saved(status: dict[str, Any] | None, workflow: str) -> bool:
    """The workflow's last checkpoint (acked by the broker) holds everything it applied."""
    return bool(status and workflow in status["workflows"] and not status["workflows"][workflow]["unsaved"])


def errors(status: dict[str, Any] | None, workflow: str, arm: str = "candidate") -> int:
    state = engine(status, workflow)
    return int(state["counts"].get(arm, {}).get("errors", 0)) if state else -1


async def command_ids(settings: Settings, expect: int = 0) -> list[str]:
    records = await read_topic(settings, settings.topic_control, expect=expect, timeout=5)
    return [decode_command(r.value).command_id for r in records]


async def wait_ticks(worker: WorkerProcess, more: int = 2) -> None:
    """Wait until the judge timer has run ``more`` more times (so any command it would send is out)."""
    start = worker.ready()
    assert start is not None
    base = start["totals"]["ticks"]
    await wait_until(
        lambda: (s := worker.status()) and s["totals"]["ticks"] >= base + more, what="judge ticks", timeout=20
    )


async def test_a_regression_yields_exactly_one_command_and_a_silent_arm_fires_on_the_timer(
    kafka_settings: Settings, spawn: Spawn
) -> None:
    await ensure_topics(kafka_settings)
    await produce(
        kafka_settings,
        kafka_settings.topic_releases,
        [
            (b"summarize", ticket("rel-9", 3, max_candidate_errors=5)),
            (b"quiet", ticket("rel-q", 1, max_candidate_errors=1000, silence_ms=1500)),
        ],
    )
    worker = spawn("w1")
    await wait_until(worker.ready, what="worker ready", timeout=40)

    now = int(time.time() * 1000)
    batches = [
        # control traffic and candidate errors, in batched and single-event messages
        [call(f"c{i}", "summarize", arm="control", ts_ms=now + i) for i in range(20)],
        [call(f"e{i}", "summarize", status="error", ts_ms=now + 100 + i) for i in range(3)],
        *[[call(f"e{i}", "summarize", status="error", ts_ms=now + 100 + i)] for i in range(3, 12)],
        [call("q1", "quiet", status="ok", ts_ms=now), call("q2", "quiet", status="ok", ts_ms=now + 1)],
    ]
    await produce_events(kafka_settings, batches)

    rollback = command_id("summarize", "rel-9", 3, "candidate-errors")
    silence = command_id("quiet", "rel-q", 1, "silence")
    await wait_until(lambda: errors(worker.status(), "summarize") == 12, what="12 candidate errors applied")
    # The silence gate has no event to trigger it: only the wall-clock judge timer can fire it.
    found: list[str] = []

    async def both_sent() -> bool:
        found[:] = await command_ids(kafka_settings, expect=2)
        return {rollback, silence} <= set(found)

    deadline = time.monotonic() + 30
    while not await both_sent():
        assert time.monotonic() < deadline, f"commands seen: {found}"
    await wait_ticks(worker)
    assert sorted(await command_ids(kafka_settings, expect=2)) == sorted([rollback, silence])

    records = await read_topic(kafka_settings, kafka_settings.topic_control, expect=2)
    by_id = {decode_command(r.value).command_id: r for r in records}
    assert by_id[rollback].key == b"summarize"
    command = decode_command(by_id[rollback].value)
    assert (command.action, command.ticket.id, command.ticket.revision) == ("rollback", "rel-9", 3)
    assert decode_command(by_id[silence].value).action == "freeze_rollout"

    metrics = worker.metrics()
    assert 'rollwatch_commands_emitted_total{action="rollback",workflow="summarize"} 1.0' in metrics
    assert 'rollwatch_events_total{workflow="summarize"} 32.0' in metrics
    assert (
        'rollwatch_gate_state{arm="candidate",gate="candidate-errors",state="breached",workflow="summarize"} 1.0'
        in (metrics)
    )
    assert "rollwatch_detection_latency_seconds_count 2.0" in metrics
    assert 'rollwatch_batch_stage_seconds_count{stage="fold"}' in metrics
    assert "rollwatch_consumer_lag" in metrics
    # faust's 1.5 s fetch wait is shortened on its aiokafka fetcher, found through faust internals.
    assert "cannot shorten the fetch wait" not in worker.log.read_text(errors="replace")


async def test_malformed_messages_are_dead_lettered_and_good_events_still_count(
    kafka_settings: Settings, spawn: Spawn
) -> None:
    await ensure_topics(kafka_settings)
    await produce(kafka_settings, kafka_settings.topic_releases, [(b"wf", ticket(max_candidate_errors=100))])
    good = orjson.dumps(
        {
            "type": "call",
            "event_id": "ok-1",
            "ts": time.time(),
            "workflow": "wf",
            "route": "r",
            "latency_ms": 10.0,
            "status": "error",
            "schema_valid": True,
            "safety_blocked": False,
            "task_success": False,
            "cost_usd": 0.0,
            "arm": "candidate",
        }
    )
    bad_field = good.replace(b'"latency_ms":10.0', b'"latency_ms":-1').replace(b"ok-1", b"bad-1")
    batch = b"[" + good.replace(b"ok-1", b"ok-2") + b',{"type":"call"},' + good.replace(b"ok-1", b"ok-3") + b"]"
    binary = b"\xff\xfe\x00not text"
    messages = [
        (b"wf", b'{"type": "call", '),  # offset 0: not JSON
        (b"wf", bad_field),  # 1: a bad field
        (b"wf", batch),  # 2: one bad item among good ones
        (b"wf", binary),  # 3: not even UTF-8
        (b"wf", b"[]"),  # 4: an empty batch
        (b"wf", good),  # 5: good
    ]
    await produce(kafka_settings, kafka_settings.topic_telemetry, messages)
    await produce(kafka_settings, kafka_settings.topic_releases, [(b"broken", b"max_candidate_errors: [oops")])

    worker = spawn("w1")
    await wait_until(worker.ready, what="worker ready", timeout=40)
    await wait_until(lambda: errors(worker.status(), "wf") == 3, what="the 3 good events applied")

    records = await read_topic(kafka_settings, kafka_settings.topic_deadletter, expect=6)
    letters = [orjson.loads(r.value) for r in records]
    telemetry = sorted(
        (x for x in letters if x["source"]["topic"] == kafka_settings.topic_telemetry),
        key=lambda x: x["source"]["offset"],
    )
    assert [(x["source"]["offset"], x["source"]["index"]) for x in telemetry] == [
        (0, None),
        (1, None),
        (2, 1),
        (3, None),
        (4, None),
    ]
    assert all(x["reason"] for x in letters)
    assert len({x["source"]["partition"] for x in telemetry}) == 1  # one key, one partition
    by_offset = {x["source"]["offset"]: x for x in telemetry}
    assert "not valid JSON" in by_offset[0]["reason"]
    assert by_offset[0]["raw"] == '{"type": "call", '
    assert by_offset[1]["field"] == "latency_ms"
    assert by_offset[1]["raw"] == bad_field.decode()
    assert by_offset[2]["field"] == "[1].event_id"
    assert orjson.loads(by_offset[2]["raw"]) == {"type": "call"}
    assert by_offset[3]["raw_encoding"] == "base64"
    assert base64.b64decode(by_offset[3]["raw"]) == binary
    assert "empty batch" in by_offset[4]["reason"]
    assert all(
        r.key == b"wf" for r in records if orjson.loads(r.value)["source"]["topic"] != kafka_settings.topic_releases
    )

    tickets = [x for x in letters if x["source"]["topic"] == kafka_settings.topic_releases]
    assert len(tickets) == 1
    assert orjson.loads(tickets[0]["raw"])["text"] == "max_candidate_errors: [oops"  # the signed envelope, whole

    # The worker is alive and still processing.
    await produce_events(kafka_settings, [[call("later", "wf", status="error")]])
    await wait_until(lambda: errors(worker.status(), "wf") == 4, what="a later event applied")
    worker.check_alive()


async def test_a_stopping_worker_checkpoints_what_waits_for_its_checkpoint(
    kafka_settings: Settings, spawn: Spawn
) -> None:
    """Events between checkpoints stay unacked; faust's stop waits for them, so the worker must write them."""
    await ensure_topics(kafka_settings)
    first = spawn("w1", "--checkpoint-interval", "120")
    await wait_until(first.ready, what="first worker ready", timeout=40)
    await produce_events(kafka_settings, [[call("a0", "wf", status="error")]])
    await wait_until(lambda: saved(first.status(), "wf"), what="the first batch checkpointed at once")
    await produce_events(kafka_settings, [[call(f"a{i}", "wf", status="error")] for i in range(1, 4)])
    await wait_until(lambda: errors(first.status(), "wf") == 4, what="4 errors applied")
    assert not saved(first.status(), "wf"), "the next checkpoint is due in two minutes"
    assert first.stop() == 0, "the worker did not stop cleanly (killed after waiting)"

    second = spawn("w2")
    await wait_until(second.ready, what="second worker ready", timeout=40)
    await wait_until(lambda: errors(second.status(), "wf") == 4, what="4 errors restored")
    status = second.status()
    assert status is not None and status["totals"]["replayed"] == 0, "offsets were not committed at the stop"
    assert (engine(status, "wf") or {})["duplicates"] == 0


async def test_two_workers_split_partitions_and_state_moves_on_rebalance(
    kafka_settings: Settings, spawn: Spawn, group: str
) -> None:
    await ensure_topics(kafka_settings)
    workflows = [f"wf-{i:02d}" for i in range(16)]
    a = spawn("a")
    await wait_until(a.ready, what="worker a ready", timeout=40)
    b = spawn("b")

    def split() -> bool:
        sa, sb = a.ready(), b.ready()
        if not sa or not sb:
            return False
        pa, pb = set(sa["partitions"]), set(sb["partitions"])
        return bool(pa and pb and not pa & pb and pa | pb == set(range(kafka_settings.telemetry_partitions)))

    await wait_until(split, what="two workers sharing the partitions", timeout=60)

    await produce_events(
        kafka_settings,
        [[call(f"{wf}-{j}", wf, status="error") for j in range(3)] for wf in workflows],
    )

    def everything_counted() -> bool:
        sa, sb = a.status(), b.status()
        if not sa or not sb:
            return False
        seen = {wf: errors(s, wf) for s in (sa, sb) for wf in s["workflows"]}
        return seen == dict.fromkeys(workflows, 3)

    await wait_until(everything_counted, what="all workflows counted across the two workers")
    sa, sb = a.status(), b.status()
    assert sa is not None and sb is not None
    assert sa["workflows"] and sb["workflows"], "one worker got no workflow at all"
    for status in (sa, sb):
        owned = set(status["partitions"])
        assert all(w["partition"] in owned for w in status["workflows"].values())

    # b leaves: a takes its partitions over and restores b's engines from the changelog.
    assert b.stop() == 0
    await wait_until(
        lambda: (s := a.ready()) and len(s["partitions"]) == kafka_settings.telemetry_partitions,
        what="a owning every partition",
        timeout=60,
    )

    def restored() -> bool:
        counts = {wf: errors(a.status(), wf) for wf in workflows}
        restored.last = counts  # type: ignore[attr-defined]
        return counts == dict.fromkeys(workflows, 3)

    try:
        await wait_until(restored, what="b's workflows restored on a")
    except AssertionError as exc:
        log = await read_topic(kafka_settings, f"{group}-state-changelog")
        dump = [(r.partition, r.offset, r.key, r.timestamp) for r in log]
        raise AssertionError(f"{exc}: {restored.last} {a.status()} CHANGELOG {dump}") from None  # type: ignore[attr-defined]


async def test_running_worker_picks_up_new_and_changed_tickets(kafka_settings: Settings, spawn: Spawn) -> None:
    await ensure_topics(kafka_settings)
    await produce(kafka_settings, kafka_settings.topic_releases, [(b"wf", ticket("rel-t", 1, max_candidate_errors=50))])
    worker = spawn("w1")
    await wait_until(worker.ready, what="worker ready", timeout=40)
    await produce_events(kafka_settings, [[call(f"e{i}", "wf", status="error") for i in range(5)]])
    await wait_until(lambda: errors(worker.status(), "wf") == 5, what="5 errors")
    await wait_ticks(worker)
    assert await command_ids(kafka_settings) == []

    # A new revision with a lower threshold, and a ticket for a workflow never seen before.
    await produce(
        kafka_settings,
        kafka_settings.topic_releases,
        [(b"wf", ticket("rel-t", 2, max_candidate_errors=3)), (b"fresh", ticket("rel-f", 1))],
    )
    expected = command_id("wf", "rel-t", 2, "candidate-errors")
    await wait_until(lambda: expected in (engine(worker.status(), "wf") or {}).get("emitted", []), what="command")
    assert await command_ids(kafka_settings, expect=1) == [expected]
    fresh = await wait_until(lambda: engine(worker.status(), "fresh"), what="engine for the new ticket")
    assert fresh["ticket"]["id"] == "rel-f"
