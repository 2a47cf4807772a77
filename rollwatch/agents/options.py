"""How one worker process runs: group, batching, checkpoint cadence, timeouts (no faust here)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_GROUP", "WorkerOptions"]

DEFAULT_GROUP: Final = "rollwatch-worker"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How one worker process runs; the broker and topics come from :class:`Settings`."""

    group: str = DEFAULT_GROUP
    """Consumer group and faust app id: workers with the same group split the partitions."""
    name: str | None = None
    """This worker's name in logs, /status and the Kafka client id (default: host-pid)."""
    web_port: int | None = None
    """HTTP port for /metrics and /status (default: ``settings.web_port``)."""
    web_bind: str | None = None
    """Address /metrics and /status listen on (default: ``settings.web_host``, 127.0.0.1)."""
    data_dir: Path | None = None
    """faust's data directory (memory store, but faust still creates it); default: a temp dir."""
    partitions: int | None = None
    """Telemetry partitions (default: ``settings.telemetry_partitions``); the changelog gets as many."""
    batch_max: int = 1000
    """Most messages per batch; bounds the raw bytes a batch holds (each message may carry 50 000 events).
    Also the most messages left unacked while their checkpoint waits (``checkpoint_interval``)."""
    batch_within: float = 0.05
    """Seconds faust waits for a batch to fill. Every event waits up to this long before it is
    judged; checkpoints no longer follow every batch, so short is cheap."""
    checkpoint_interval: float = 0.5
    """Most seconds between checkpoints while events come in. A batch that emits a command is
    checkpointed at once; others join the next checkpoint and stay unacked until it is written
    (0: after every batch). Writing every engine after every small batch cost more than
    folding the batch itself."""
    judge_interval: float = 1.0
    tick_budget: float = 0.1
    """Seconds of judging per timer tick; each tick judges the next workflows in turn."""
    fetch_max_wait: float = 0.05
    """Longest a fetch waits at the broker for data. faust hard-codes 1.5 s, and Tansu does not
    answer a waiting fetch when data arrives: a message produced into an idle partition reached
    an aiokafka consumer after 0.40 s (median; max 0.73 s) with 1.5 s, 0.02 s with 0.1 s (see
    :func:`rollwatch.agents.app.shorten_fetch_wait`)."""
    commit_interval: float = 1.0
    session_timeout: float = 10.0
    heartbeat_interval: float = 2.0
    rebalance_timeout: float = 15.0
    standby_replicas: int = 1
    tickets_wait: float = 15.0
    """How long the first batch waits for the releases backlog before going on without it."""
    max_command_ids: int = 100_000

    @property
    def worker_name(self) -> str:
        return self.name or f"{socket.gethostname()}-{os.getpid()}"
