"""Building, signing and publishing commands, and reading acks, for the control-plane tests."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from rollwatch.commands import (
    ControlAck,
    Evidence,
    Reason,
    RollbackCommand,
    TicketRef,
    decode_ack,
    encode_command,
)
from rollwatch.control.topics import make_consumer, partitions_of
from rollwatch.kafka import make_producer
from rollwatch.settings import Settings
from rollwatch.signing import sign_command
from rollwatch.tickets import Ticket, load_ticket, ticket_to_json
from rollwatch.trust import generate_ed25519, parse_signing_key
from tests.releases import signed_release

__all__ = [
    "EXAMPLES",
    "PEOPLE",
    "AckReader",
    "by",
    "write_keyring",
    "command",
    "example_ticket",
    "publish",
    "publish_ticket",
    "signed",
    "wait_until",
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PEOPLE: dict[str, tuple[str, str]] = {
    name: generate_ed25519()
    for name in (
        "maya.chen",
        "platform-oncall",
        "luis.ortega",
        "priya.natarajan",
        "support-lead",
        "ic-rotation",
        "mallory",
        "release-manager",
    )
}
"""Every owner of the example tickets, a stranger and a release manager: (private, public) key text."""


def write_keyring(path: Path, own_key_id: str, own_secret_env: str) -> Path:
    """A keyring file: the process's own HMAC key (every purpose), a key per person, the release manager.

    People sign commands only; the release manager signs tickets only.
    """
    principals: list[dict[str, Any]] = [
        {
            "name": "rollwatch-worker",
            "may_sign": ["commands", "tickets", "flags"],
            "keys": [{"key_id": own_key_id, "secret_env": own_secret_env}],
        }
    ]
    for name, (_, public) in PEOPLE.items():
        may = ["tickets"] if name == "release-manager" else ["commands"]
        principals.append({"name": name, "may_sign": may, "keys": [{"key_id": f"{name}-key", "public_key": public}]})
    path.write_text(json.dumps({"format": "rollwatch.keyring/v1", "principals": principals}), encoding="utf-8")
    return path


def by(name: str, cmd: RollbackCommand) -> RollbackCommand:
    """``cmd`` issued and signed by ``name`` with their own key (see :data:`PEOPLE`)."""
    return sign_command(cmd, key=parse_signing_key(f"{name}-key", PEOPLE[name][0], name))


def example_ticket(name: str = "support-summary") -> Ticket:
    return load_ticket(EXAMPLES / f"{name}.ticket.yaml")


def command(
    ticket: Ticket,
    action: str,
    flags: dict[str, Any],
    *,
    issued_by: str | None = None,
    segment: str | None = None,
    command_id: str | None = None,
    issued_at: datetime | None = None,
    expires_in: timedelta | None = timedelta(minutes=10),
    revision: int | None = None,
) -> RollbackCommand:
    """An unsigned command under ``ticket``, issued by its automation principal unless told otherwise."""
    issued = issued_at or datetime.now(UTC)
    return RollbackCommand.model_validate(
        {
            "command_id": command_id or f"test-{uuid.uuid4().hex}",
            "issued_at": issued,
            "workflow": ticket.workflow,
            "segment": segment,
            "action": action,
            "flags": flags,
            "reason": Reason(gate="g", metric="m", observed=1.0, threshold=0.5, window="last 200 calls", samples={}),
            "evidence": Evidence(trace_ids=[], event_ids=[]),
            "issued_by": issued_by or ticket.owners.automation,
            "ticket": TicketRef(id=ticket.ticket, revision=ticket.revision if revision is None else revision),
            "expires_at": issued + expires_in if expires_in is not None else None,
        }
    )


def signed(settings: Settings, cmd: RollbackCommand) -> RollbackCommand:
    return sign_command(cmd, settings.signing_key_id, settings.signing_key)


async def publish(settings: Settings, *commands: RollbackCommand | bytes, key: str | None = None) -> None:
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    try:
        for cmd in commands:
            if isinstance(cmd, RollbackCommand):
                # Stamped when it was issued, as the producer that issued it would have sent it.
                sent = int(cmd.issued_at.timestamp() * 1000)
                await producer.send_and_wait(
                    settings.topic_control, encode_command(cmd), key=cmd.workflow.encode(), timestamp_ms=sent
                )
            else:
                await producer.send_and_wait(settings.topic_control, cmd, key=(key or "x").encode())
    finally:
        await producer.stop()


async def publish_ticket(settings: Settings, ticket: Ticket) -> None:
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    try:
        value = signed_release(settings, ticket.workflow, ticket_to_json(ticket))
        await producer.send_and_wait(settings.topic_releases, value, key=ticket.workflow.encode())
    finally:
        await producer.stop()


class AckReader:
    """Reads the acks topic from the beginning; ``wait_for`` returns acks as they arrive."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.acks: list[ControlAck] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> AckReader:
        self._consumer = make_consumer(self.settings)
        await self._consumer.start()
        tps = await partitions_of(self._consumer, self.settings.topic_acks)
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def wait_for(self, command_id: str, consumer: str, timeout: float = 15.0) -> ControlAck:
        """The first ack of ``command_id`` by ``consumer``."""
        return (await self.collect(command_id, consumer, 1, timeout))[0]

    async def collect(self, command_id: str, consumer: str, count: int, timeout: float = 15.0) -> list[ControlAck]:
        """The first ``count`` acks of ``command_id`` by ``consumer``, in topic order."""
        assert self._consumer is not None
        deadline = time.monotonic() + timeout
        while True:
            found = [a for a in self.acks if a.command_id == command_id and a.consumer == consumer]
            if len(found) >= count:
                return found[:count]
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} acks for {command_id} from {consumer}; all: {self.acks}")
            batches = await self._consumer.getmany(timeout_ms=100)
            for records in batches.values():
                self.acks.extend(decode_ack(r.value) for r in records)


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def wiped_redis(settings: Settings) -> AsyncIterator[Redis]:
    """A client of the real Redis; every key under the settings' prefix is deleted on the way out."""
    client = Redis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{settings.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
