"""Fuzzing telemetry through a real worker process: generated garbage between good events.

``test_fuzz_ingest.py`` fuzzes the decoder in-process; this sends what Hypothesis
generates through the broker to one ``python -m rollwatch.agents`` process (the
production engine, no ticket) and checks what comes out: malformed JSON, wrong types,
huge strings, NaN/Infinity literals, negative numbers, deep nesting, unknown event types,
invalid UTF-8, events stamped an hour ahead, tombstones, empty and over-limit batches,
a large clean batch, and batches mixing good and bad items, all interleaved with good
events that carry unique ids.

Expectations come from an independent oracle (``oracle.py``: the standard library's
JSON reader, the JSON Schema in ``schemas/`` through ``jsonschema``, and the receiver's
documented limits restated as numbers), never from rollwatch's decoder. The generator's
intent is checked against that oracle too (what is built to be bad must be bad: a wrong
value, a missing field, a time stamp an hour ahead or days too old, an item of another
workflow than the message key), so a lenient oracle cannot make the test vacuous.
Asserted: the worker never dies; every rejected message or item is in the dead-letter
topic once, at its source partition, offset and batch index, with a reason and its
bytes; every good event is counted exactly once in /status (per route: calls, reviews,
complaints; no duplicates; totals).

Generation is a single Hypothesis run of ``EXAMPLES`` examples, produced in one go to
one worker: seconds per run. Set ``ROLLWATCH_FUZZ_SEED`` to replay a failing run (the
seed is in every failure message).
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from rollwatch.broker import EmbeddedBroker
from rollwatch.events import MAX_BATCH, decode_checked
from rollwatch.kafka import ensure_topics, make_producer
from rollwatch.settings import Settings
from tests.agents.harness import WorkerProcess, read_topic, wait_until, write_config
from tests.reliability.conftest import control_settings_for
from tests.reliability.oracle import judge_message

pytestmark = pytest.mark.integration

ENGINE = "rollwatch.gates.engine:EngineFactoryImpl"
EXAMPLES = 50
SEED = int(os.environ.get("ROLLWATCH_FUZZ_SEED") or random.SystemRandom().getrandbits(32))
WORKFLOWS = ("fz-a", "fz-b", "fz-c")
ROUTES = ("route-1", "route-2")

# -- what is generated ---------------------------------------------------------------------

REQUIRED = {
    "call": (
        "type", "event_id", "ts", "workflow", "route", "latency_ms", "status",
        "schema_valid", "safety_blocked", "task_success", "cost_usd",
    ),
    "review": ("type", "event_id", "ts", "workflow", "route", "verdict"),
    "complaint": ("type", "event_id", "ts", "workflow", "route", "confirmed"),
}  # fmt: skip


def deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


# (field, value) pairs that no event of any kind accepts: a wrong value or an unknown field.
BAD_VALUES: list[tuple[str, Any]] = [
    ("latency_ms", -1), ("latency_ms", -1e-9), ("latency_ms", "12"), ("latency_ms", True), ("latency_ms", None),
    ("latency_ms", {"a": 1}), ("cost_usd", -0.01), ("cost_usd", "free"), ("cost_usd", -(2**63)),
    ("status", "exploded"), ("status", 5), ("status", ""), ("schema_valid", "yes"), ("schema_valid", 1),
    ("safety_blocked", None), ("safety_blocked", 0), ("task_success", "no"),
    ("ts", -1), ("ts", "yesterday"), ("ts", "2026-13-45T99:99:99Z"), ("ts", 1e20), ("ts", True), ("ts", None),
    ("ts", [1]), ("event_id", ""), ("event_id", 5), ("event_id", None), ("event_id", "x" * 257),
    ("event_id", "x" * 30_000), ("workflow", ""), ("workflow", ["fz-a"]), ("route", "r" * 300),
    ("type", "click"), ("type", ""), ("type", 5), ("type", None), ("type", "CALL"),
    ("arm", "blue"), ("arm", 1), ("segment", deep(60)), ("segment", {"a": {"b": {}}}), ("segment", "s" * 1000),
    ("input_tokens", -5), ("input_tokens", 1.5), ("quality_score", -0.1), ("quality_score", "good"),
    ("nonsense", 1), ("verdict", "maybe"), ("confirmed", "yes"), ("sample", "s" * 5000),
]  # fmt: skip
NOT_OBJECTS: list[Any] = [5, "x", None, [], [[]], True, 1.5, deep(30)]


@dataclass(frozen=True)
class Good:
    kind: str
    workflow: str
    route: str
    extras: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Bad:
    """A good event of ``base`` broken by ``how``.

    ``("drop", field)``, ``("set", (field, value))``, ``("future", seconds)``, ``("stale", days)``,
    ``("foreign", workflow)`` (not the message key's) or ``("item", value)`` (not an object at all).
    """

    base: Good
    how: tuple[str, Any]


@dataclass(frozen=True)
class Spec:
    """One message to build: a single item, a batch, or raw bytes (``raw`` set, or None for a tombstone)."""

    shape: str  # "single", "batch", "raw"
    items: tuple[Good | Bad, ...] = ()
    raw: bytes | None = None
    key: bytes | None = None
    damage: str = ""  # for "batch": "nan", "utf8", "truncate" break the whole message


goods = st.builds(
    Good,
    st.sampled_from(["call", "call", "call", "review", "complaint"]),
    st.sampled_from(WORKFLOWS),
    st.sampled_from(ROUTES),
    st.sampled_from([(), (("arm", "candidate"),), (("arm", "control"), ("segment", "eu")), (("trace_id", "t-1"),)]),
)
bads = goods.flatmap(
    lambda g: st.builds(
        Bad,
        st.just(g),
        st.one_of(
            st.sampled_from(REQUIRED[g.kind]).map(lambda f: ("drop", f)),
            st.sampled_from(BAD_VALUES).map(lambda pair: ("set", pair)),
            st.integers(600, 10**6).map(lambda s: ("future", s)),
            st.integers(9, 20_000).map(lambda d: ("stale", d)),
            st.sampled_from(["fz-other", "fz-x"]).map(lambda w: ("foreign", w)),
            st.sampled_from(NOT_OBJECTS).map(lambda v: ("item", v)),
        ),
    )
)
RAW_CASES: list[bytes | None] = [
    b"", b" ", b"[]", b"{}", b"null", b"5", b'"call"', b"NaN", b"[Infinity]", b"-Infinity", b"[-1e400]",
    b"[" * 5000 + b"]" * 5000, b"[" * 200 + b"]" * 200, b'{"type": "call", ', b"[" + b"0," * MAX_BATCH + b"0]",
    b'"' + b"\xff\xfe" * 10 + b'"', b"\x00" * 64, None,
]  # fmt: skip
"""Whole messages that are not a batch of events: empty, scalars, NaN, over-deep, over-limit, binary, a tombstone."""
raw_messages = st.one_of(
    st.binary(max_size=200), st.text(max_size=200).map(str.encode), st.sampled_from(RAW_CASES)
)  # fmt: skip
keys = st.sampled_from([b"fz-a", b"", b"\xff\xfe", None])
specs = st.one_of(
    st.builds(Spec, st.just("single"), st.tuples(goods | bads)),
    st.builds(Spec, st.just("batch"), st.lists(goods | bads, min_size=1, max_size=25).map(tuple)),
    st.builds(
        Spec, st.just("batch"), st.lists(goods, min_size=1, max_size=5).map(tuple),
        damage=st.sampled_from(["nan", "utf8", "truncate"]),
    ),
    st.builds(Spec, st.just("raw"), raw=raw_messages, key=keys),
)  # fmt: skip


# -- building messages and the oracle's verdict --------------------------------------------


@dataclass
class Built:
    key: bytes | None
    value: bytes | None
    items: list[Any]  # the items it was built from (a "single" message is its only item)
    intended_bad: set[int | None]  # indices built to be bad (None: the whole message)
    good: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[int | None] = field(default_factory=list)
    partition: int = -1
    offset: int = -1
    from_items: bool = True


def _as_list(raw: bytes | None) -> list[Any]:
    """The items of a raw message that happens to be a JSON array (to compare dead letters with)."""
    try:
        value = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return []
    return value if isinstance(value, list) else []


class Builder:
    """Turns specs into bytes with unique event ids and per-workflow increasing times."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.count = 0

    def event(self, good: Good) -> dict[str, Any]:
        self.count += 1
        doc: dict[str, Any] = {
            "type": good.kind,
            "event_id": f"fz-{SEED}-{self.count}",
            "ts": (self.now_ms + self.count) / 1000,
            "workflow": good.workflow,
            "route": good.route,
        }
        if good.kind == "call":
            doc |= {"latency_ms": 120.5, "status": "ok", "schema_valid": True, "safety_blocked": False}
            doc |= {"task_success": None, "cost_usd": 0.002}
        elif good.kind == "review":
            doc |= {"verdict": "rejected"}
        else:
            doc |= {"confirmed": True, "sample": "made-up refund"}
        return doc | dict(good.extras)

    def item(self, spec: Good | Bad) -> Any:
        if isinstance(spec, Good):
            return self.event(spec)
        doc = self.event(spec.base)
        what, arg = spec.how
        if what == "drop":
            del doc[arg]
        elif what == "set":
            doc[arg[0]] = arg[1]
        elif what == "future":
            doc["ts"] = self.now_ms / 1000 + arg
        elif what == "stale":
            doc["ts"] = self.now_ms / 1000 - arg * 86_400
        elif what == "foreign":
            doc["workflow"] = arg
        else:
            return arg
        return doc

    def build(self, spec: Spec) -> Built:
        if spec.shape == "raw":
            # aiokafka sends no record without both: a tombstone gets a key.
            key = spec.key if spec.raw is not None or spec.key is not None else b"fz-a"
            return Built(key, spec.raw, _as_list(spec.raw), set(), from_items=False)
        items = [self.item(s) for s in spec.items]
        first = next((s for s in spec.items if isinstance(s, Good)), None)
        key = first.workflow.encode() if first else b"fz-a"
        # An item of another workflow than the key is bad by construction (counted on the wrong partition).
        bad: set[int | None] = {i for i, s in enumerate(spec.items) if isinstance(s, Bad) or s.workflow.encode() != key}
        if spec.shape == "single":
            return Built(key, orjson.dumps(items[0]), items, {None} if bad else set())
        value = orjson.dumps(items)
        if spec.damage == "nan":
            value = value.replace(b'"ts":', b'"ts":NaN,"was":', 1)
        elif spec.damage == "utf8":
            value = value.replace(b'"route-', b'"\xff\xferoute-', 1)
        elif spec.damage == "truncate":
            value = value[: len(value) // 2]
        return Built(key, value, items, {None} if spec.damage else bad)


def judge(built: Built, now_ms: int) -> None:
    """The oracle's verdict on one message: the good events, and the rejected indices.

    For a message built from items (not raw bytes) what was meant to be bad is known, and
    checked against the verdict.
    """
    verdict = judge_message(built.value, built.key, now_ms)
    built.good = verdict.good
    built.rejected = verdict.rejected
    if built.from_items and built.intended_bad != {None}:
        found = {i for i in built.rejected if i is not None}
        assert found == built.intended_bad, f"seed {SEED}: built to be bad {built.intended_bad}, oracle {found}"
    elif built.from_items and built.intended_bad:
        assert not built.good and built.rejected, f"seed {SEED}: built to be bad, accepted: {built.value!r:.300}"


def generate_messages() -> list[Spec]:
    collected: list[Spec] = []

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(specs, min_size=1, max_size=6))
    def collect(batch: list[Spec]) -> None:
        collected.extend(batch)

    collect()
    return collected


# -- the worker ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_settings(broker: EmbeddedBroker) -> Settings:
    made = control_settings_for(broker.bootstrap_servers)
    asyncio.run(ensure_topics(made))
    return made


@pytest.fixture(scope="module")
def fuzz_worker(fuzz_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One worker for the module: the production engine, no ticket (nothing to judge, everything to count)."""
    tmp: Path = tmp_path_factory.mktemp("fuzz-worker")
    config = write_config(fuzz_settings, tmp / "rollwatch.toml")
    worker = WorkerProcess(config, f"rw-{uuid.uuid4().hex[:8]}", "w-fuzz", tmp / "w.log", engine=ENGINE)
    worker.start()
    yield worker
    worker.kill()
    print(f"----- fuzz worker (last lines) -----\n{worker.tail(80)}")


async def send(settings: Settings, messages: list[Built]) -> None:
    """Produce every message (in order, one producer) and note where each landed."""
    producer = make_producer(settings, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(settings.topic_telemetry, m.value, key=m.key) for m in messages]
        for message, meta in zip(messages, await asyncio.gather(*futures), strict=True):
            message.partition, message.offset = meta.partition, meta.offset
    finally:
        await producer.stop()


RECEIVER_RULES = ("ahead of the receiver's clock", "days old", "but the message is keyed")
"""Words of the reasons the receiver gives for an event valid on its own (time, key)."""


def _same_item(raw: bytes | None, message: bytes | None, index: int) -> bool:
    """The dead letter's bytes are the batch's item ``index`` (compared as JSON when both parse)."""
    items = _as_list(message)
    if items:
        return bool(orjson.loads(raw or b"null") == items[index])
    # A batch too deep for orjson as a whole: the letter holds the item's own bytes.
    return raw is not None and raw.strip() in (message or b"")


def letter_raw(letter: dict[str, Any]) -> bytes | None:
    if letter["raw"] is None:
        return None
    if letter["raw_encoding"] == "base64":
        return base64.b64decode(letter["raw"])
    return str(letter["raw"]).encode()


async def test_generated_garbage_between_good_events_through_a_worker(
    fuzz_settings: Settings, fuzz_worker: WorkerProcess
) -> None:
    settings, worker = fuzz_settings, fuzz_worker
    now_ms = int(time.time() * 1000)
    builder = Builder(now_ms)
    messages = [builder.build(spec) for spec in generate_messages()]
    # Every listed case once, whatever Hypothesis drew: each bad value in one mixed batch,
    # each whole-message case, each way of breaking a batch, and a large clean batch.
    base = Good("call", "fz-b", "route-2")
    mixed = [x for pair in BAD_VALUES for x in (Bad(base, ("set", pair)), base)]
    mixed += [x for item in NOT_OBJECTS for x in (Bad(base, ("item", item)), Good("review", "fz-b", "route-1"))]
    mixed += [Bad(Good("complaint", "fz-b", "route-1"), ("future", 3600)), Good("complaint", "fz-b", "route-1")]
    fixed = [Spec("batch", tuple(mixed))] + [Spec("raw", raw=raw, key=b"fz-c") for raw in RAW_CASES]
    fixed += [Spec("batch", (base, base), damage=damage) for damage in ("nan", "utf8", "truncate")]
    fixed.append(Spec("batch", tuple(Good("call", "fz-c", "route-1") for _ in range(1500))))
    messages += [builder.build(spec) for spec in fixed]
    for message in messages:
        judge(message, now_ms)
    kinds = Counter("bad" if m.rejected else "good" for m in messages)
    assert kinds["bad"] >= 10 and kinds["good"] >= 5, f"seed {SEED}: a thin run {kinds}"
    mixed_batches = sum(1 for m in messages if m.good and m.rejected)
    assert mixed_batches >= 1

    await wait_until(worker.ready, what="worker ready", timeout=40)
    await send(settings, messages)
    good = [e for m in messages for e in m.good]
    letters_expected = sum(len(m.rejected) for m in messages)
    print(
        f"seed {SEED}: {len(messages)} messages ({kinds['bad']} with rejections, {mixed_batches} mixed), "
        f"{len(good)} good events, {letters_expected} dead letters expected"
    )

    def done() -> dict[str, Any] | None:
        worker.check_alive()
        status = worker.status()
        totals = status["totals"] if status else {}
        if totals.get("messages", 0) >= len(messages) and totals.get("events", 0) >= len(good):
            return status
        return None

    status = await wait_until(done, what=f"{len(messages)} messages consumed (seed {SEED})", timeout=40)
    totals = status["totals"]
    assert (totals["messages"], totals["events"], totals["deadletters"]) == (
        len(messages),
        len(good),
        letters_expected,
    ), f"seed {SEED}"

    # Every good event exactly once, per workflow and route.
    want: Counter[tuple[str, str, str]] = Counter((e["workflow"], e["route"], e["type"]) for e in good)
    seen: Counter[tuple[str, str, str]] = Counter()
    for workflow, slot in status["workflows"].items():
        engine = slot["engine"]
        assert engine["duplicates"] == 0, f"seed {SEED}: {workflow} counted a repeat"
        for route, counts in engine["routes"].items():
            for kind, name in (("call", "calls"), ("review", "reviews"), ("complaint", "complaints")):
                if counts[name]:
                    seen[(workflow, route, kind)] = counts[name]
            assert counts["late_events"] == 0, f"seed {SEED}: {workflow}/{route} late"
    assert seen == want, f"seed {SEED}"

    # Every rejection once, where it came from, with why and what.
    records = await read_topic(settings, settings.topic_deadletter, expect=letters_expected, timeout=20)
    letters = [orjson.loads(r.value) for r in records]
    assert all(x["source"]["topic"] == settings.topic_telemetry for x in letters)
    by_source: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for letter in letters:
        by_source.setdefault((letter["source"]["partition"], letter["source"]["offset"]), []).append(letter)
    for message in messages:
        found = by_source.pop((message.partition, message.offset), [])
        where = f"seed {SEED}, {message.partition}@{message.offset}, {message.value!r:.200}"
        assert sorted(x["source"]["index"] is None for x in found) == sorted(i is None for i in message.rejected), where
        assert sorted(x["source"]["index"] for x in found if x["source"]["index"] is not None) == sorted(
            i for i in message.rejected if i is not None
        ), where
        for letter in found:
            assert letter["reason"], where
            index = letter["source"]["index"]
            path = letter["field"] or ""
            admission = path.endswith((".ts", ".workflow")) or path in ("ts", "workflow")
            refused_at_door = admission and any(word in letter["reason"] for word in RECEIVER_RULES)
            if index is not None and refused_at_door:
                # Refused by a receiver rule after decoding: the item's event, re-encoded.
                assert letter["field"] in (f"[{index}].ts", f"[{index}].workflow"), where
                item = _as_list(message.value)[index]
                assert orjson.loads(letter_raw(letter) or b"null")["event_id"] == item["event_id"], where
            elif index is not None:
                assert letter["field"].startswith(f"[{index}]"), where
                assert _same_item(letter_raw(letter), message.value, index), where
            elif letter_raw(letter) != message.value:
                # Not the message itself: its one event refused by a receiver rule, re-encoded.
                assert refused_at_door, where
                assert orjson.loads(letter_raw(letter) or b"null")["event_id"].startswith(f"fz-{SEED}-"), where
    assert not by_source, f"seed {SEED}: dead letters for messages never sent: {sorted(by_source)}"
    worker.check_alive()


TOO_DEEP = 300
"""Nesting orjson reads (up to 1024 levels) but will not write back (over 254)."""


async def test_an_item_nested_too_deep_to_re_encode_costs_only_itself(
    fuzz_settings: Settings, fuzz_worker: WorkerProcess
) -> None:
    settings, worker = fuzz_settings, fuzz_worker
    builder = Builder(int(time.time() * 1000))
    first, second = builder.event(Good("call", "fz-deep", "route-1")), builder.event(Good("call", "fz-deep", "route-1"))
    value = b"[" + orjson.dumps(first) + b"," + b"[" * TOO_DEEP + b"]" * TOO_DEEP + b"," + orjson.dumps(second) + b"]"
    message = Built(b"fz-deep", value, [], {1})
    ready = await wait_until(worker.ready, what="worker ready", timeout=40)
    await send(settings, [message])
    before = ready["totals"]["messages"]
    await wait_until(lambda: (s := worker.status()) and s["totals"]["messages"] > before, what="the message consumed")
    records = await read_topic(settings, settings.topic_deadletter)
    letters = [
        x
        for x in map(orjson.loads, (r.value for r in records))
        if x["source"]["offset"] == message.offset and x["source"]["partition"] == message.partition
    ]
    status = worker.status()
    assert status is not None
    routes = status["workflows"].get("fz-deep", {}).get("engine", {}).get("routes", {})
    calls = routes.get("route-1", {}).get("calls", 0)
    worker.check_alive()
    assert [(x["source"]["index"], x["field"]) for x in letters] == [(1, "[1]")], letters
    assert calls == 2
    decoded = decode_checked(value)  # the in-process decoder: the same crash, or the same verdict
    assert [e.event_id for e in decoded.events] == [first["event_id"], second["event_id"]]
