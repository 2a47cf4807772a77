"""Decision-to-applied latency: the join of commands and acks, and the unacknowledged count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from rollwatch.commands import ControlAck
from rollwatch.flagstore.latency import ApplyLatency

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def ack(command_id: str, consumer: str, after_ms: int, status: str = "applied") -> ControlAck:
    return ControlAck.model_validate(
        {
            "command_id": command_id,
            "consumer": consumer,
            "applied_at": T0 + timedelta(milliseconds=after_ms),
            "status": status,
        }
    )


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_each_consumer_gets_its_own_apply_time() -> None:
    registry = CollectorRegistry()
    latency = ApplyLatency(registry, deadline_s=10)
    latency.command_seen("c1", T0, "wf", seen_at=T0)
    assert latency.ack_seen(ack("c1", "flagstore", 40)) == 0.04
    assert latency.ack_seen(ack("c1", "gateway-1", 70)) == 0.07
    assert latency.ack_seen(ack("c1", "gateway-2", 5, status="refused")) is None
    assert value(registry, "rollwatch_decision_to_applied_seconds_count", consumer="flagstore") == 1
    assert value(registry, "rollwatch_decision_to_applied_seconds_sum", consumer="gateway-1") == 0.07
    assert value(registry, "rollwatch_decision_to_applied_seconds_count", consumer="gateway-2") is None
    assert value(registry, "rollwatch_command_acks_total", consumer="gateway-2", status="refused") == 1


def test_an_ack_that_overtakes_its_command_still_counts() -> None:
    registry = CollectorRegistry()
    latency = ApplyLatency(registry, deadline_s=10)
    assert latency.ack_seen(ack("c1", "gateway-1", 25)) is None
    latency.command_seen("c1", T0, "wf", seen_at=T0)
    assert value(registry, "rollwatch_decision_to_applied_seconds_sum", consumer="gateway-1") == 0.025
    assert latency.sweep(T0 + timedelta(seconds=11)) == []


def test_commands_nobody_acknowledged_are_counted_once_after_the_deadline() -> None:
    registry = CollectorRegistry()
    latency = ApplyLatency(registry, deadline_s=10)
    latency.command_seen("lost", T0, "wf", seen_at=T0)
    latency.command_seen("refused", T0, "wf", seen_at=T0)
    latency.ack_seen(ack("refused", "flagstore", 5, status="refused"))
    assert latency.sweep(T0 + timedelta(seconds=9)) == []
    assert latency.sweep(T0 + timedelta(seconds=10)) == ["lost"]
    assert latency.sweep(T0 + timedelta(seconds=30)) == []
    assert value(registry, "rollwatch_commands_unacknowledged_total") == 1
