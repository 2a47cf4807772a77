"""Detect a changelog that went backwards or vanished, before faust's recovery trips on it.

faust's table recovery remembers, per changelog partition, the last offset it has read
(``Recovery.active_offsets`` and ``standby_offsets``) for the life of the process, and at
the next rebalance resumes from there. When the broker has lost the changelog (the
embedded broker restarted empty; a real cluster lost or recreated the topic) that offset
lies beyond the new log's end. faust then either raises ``ConsistencyError`` ("persisted
offset ... higher than the last offset in that topic (263 > -1)"), which stops the worker,
or, with the check off, seeks past the end and waits for records that never come.

:func:`guard_recovery` wraps the recovery's offset building (faust internals:
``Recovery._build_offsets``, present in faust-streaming 0.10 to 0.11): after faust has
built the offsets it would resume from, any that lie beyond the partition's last offset
are reset to the start of the new log, and the caller hears which partitions, how far it
had read and where the log ends now. The worker then says so (log, metric, ``/status``)
and writes the engines it holds in memory back to the new changelog, which is the
"rebuild what it can" (state of a partition it did not hold in memory is gone with the log).
Hand-written because faust has no hook for it; kept to one wrapped method.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from rollwatch.kafka import client_options
from rollwatch.settings import Settings

__all__ = ["ChangelogReset", "backwards", "ensure_changelog", "guard_recovery"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChangelogReset:
    """One changelog partition whose log no longer reaches the offset recovery had read."""

    topic: str
    partition: int
    kind: str
    """``active`` or ``standby`` (faust's words for owned and replica partitions)."""
    read_up_to: int
    highwater: int
    """The last offset the log holds now (-1: empty)."""


OnReset = Callable[[list[ChangelogReset]], Awaitable[None]]


def backwards(read: Mapping[Any, int | None], highwaters: Mapping[Any, int | None], kind: str) -> list[ChangelogReset]:
    """Partitions whose recorded read position lies beyond the last offset of the log."""
    out = []
    for tp, offset in read.items():
        if offset is None or offset < 0:
            continue
        high = highwaters.get(tp)
        last = high - 1 if high is not None else -1
        if offset > last:
            out.append(ChangelogReset(tp.topic, tp.partition, kind, offset, last))
    return out


async def ensure_changelog(settings: Settings, topic: str, partitions: int) -> None:
    """Create the changelog topic if the broker lost it, before anything is written to it.

    faust declares its changelog only when the worker starts. A broker that auto-creates
    topics on produce (Tansu always; Kafka with ``auto.create.topics.enable``) would make it
    from the first checkpoint written back, with the broker's default partition count (four
    on Tansu, not the telemetry topic's) and, on Tansu, records a later ``CreateTopics``
    shadows: the next worker's recovery would then wait for records it cannot read.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        if topic in set(await admin.list_topics()):
            found = await admin.describe_topics([topic])
            count = len(found[0].get("partitions", ())) if found else partitions
            if count != partitions:
                log.error(
                    "changelog %s has %d partitions, the telemetry topic %d: it was auto-created by a write "
                    "before this worker could create it; delete it so the next worker recreates it",
                    topic,
                    count,
                    partitions,
                )
            return
        spec = NewTopic(topic, partitions, 1, topic_configs={"cleanup.policy": "compact"})
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([spec])
        log.warning("changelog %s was gone: created it again with %d partitions", topic, partitions)
    except KafkaError as exc:
        log.error("cannot check the changelog %s after its loss: %s", topic, exc)
    finally:
        await admin.close()


def guard_recovery(recovery: Any, on_reset: OnReset, declare: Callable[[], Awaitable[None]] | None = None) -> bool:
    """Wrap ``recovery._build_offsets`` once; whether the faust internals were where expected.

    ``declare`` runs first when a reset is found (see :func:`ensure_changelog`).
    """
    if getattr(recovery, "_rollwatch_guard", False):
        return True
    original = getattr(recovery, "_build_offsets", None)
    if original is None:
        log.warning("cannot guard changelog recovery: faust's Recovery has no _build_offsets")
        return False

    async def build_offsets(consumer: Any, tps: Any, destination: Any, title: str) -> None:
        await original(consumer, tps, destination, title)
        if not tps:
            return
        highwaters = await consumer.highwaters(*tps)
        resets = backwards({tp: destination[tp] for tp in tps}, highwaters, title)
        if not resets:
            return
        earliest = await consumer.earliest_offsets(*tps)
        for reset in resets:
            tp = next(tp for tp in tps if tp.topic == reset.topic and tp.partition == reset.partition)
            first = earliest.get(tp)
            # faust's convention: the offset *read*, so one before the first to read.
            destination[tp] = first - 1 if first is not None else -1
        if declare is not None:
            await declare()
        await on_reset(resets)

    recovery._build_offsets = build_offsets
    recovery._rollwatch_guard = True
    return True
