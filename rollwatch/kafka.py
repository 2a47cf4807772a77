"""Kafka plumbing shared by every process: client options, producers and topic creation.

One place decides how rollwatch talks to a broker, so the embedded Tansu broker and a
SASL-protected Apache Kafka cluster differ only in settings.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from rollwatch.errors import BrokerError
from rollwatch.settings import Settings

__all__ = ["COMPACTED_ROLES", "client_options", "ensure_topics", "make_producer", "topic_specs", "unreachable"]

COMPACTED_ROLES = frozenset({"releases", "flags"})
"""Topics that hold the latest value per key (a ticket per workflow, flags per workflow)."""


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection options for any aiokafka client built from these settings."""
    options: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers}
    if settings.sasl_username:
        options |= {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value() if settings.sasl_password else "",
        }
    return options


def make_producer(settings: Settings, **extra: Any) -> AIOKafkaProducer:
    """A producer that works on Tansu too: no idempotence (InitProducerId is unsupported)."""
    options = client_options(settings) | {"enable_idempotence": False, "acks": "all", "linger_ms": 5}
    return AIOKafkaProducer(**(options | extra))


def topic_specs(settings: Settings) -> list[NewTopic]:
    specs = []
    for role, name in settings.topics().items():
        partitions = settings.telemetry_partitions if role in ("telemetry", "otlp") else settings.control_partitions
        configs = {"cleanup.policy": "compact"} if role in COMPACTED_ROLES else {}
        specs.append(NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=configs))
    return specs


def unreachable(settings: Settings, exc: BaseException, doing: str) -> BrokerError:
    """The one line every command prints when the broker cannot be reached: where it looked, and why there."""
    return BrokerError(
        f"cannot reach Kafka at {settings.bootstrap_servers} {doing} ({type(exc).__name__}): "
        "is the broker running? The address comes from ROLLWATCH_BOOTSTRAP_SERVERS "
        "(or bootstrap_servers in the config file)"
    )


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the topics that do not exist yet; the names created (none when all existed)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [spec for spec in topic_specs(settings) if spec.name not in existing]
        if missing:
            # Another process may win the race; the topic is then there, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return [spec.name for spec in missing]
    except KafkaError as exc:
        raise unreachable(settings, exc, "to check the topics") from exc
    finally:
        await admin.close()
