"""The worker's faust app, whose consumer steps over record batches it cannot decode.

faust has no setting for this, but it builds its consumer from classes it lets a
subclass choose: ``App._new_transport`` returns the transport, whose ``Consumer`` class
attribute is the consumer, whose ``_new_consumer_thread`` builds the thread that calls
aiokafka. :class:`SkippingConsumerThread` overrides that call (``_fetch_records``) to go
through :func:`rollwatch.agents.fetch.fetch_skipping`. Four small subclasses instead of a
patch: nothing global changes, and only the worker's app is affected.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Transport
from faust.types.transports import TransportT

from rollwatch.agents.fetch import UndecodableBatch, fetch_skipping

__all__ = ["SkippingConsumer", "SkippingConsumerThread", "SkippingTransport", "WorkerFaust"]

log = logging.getLogger(__name__)


class SkippingConsumerThread(AIOKafkaConsumerThread):
    """faust's aiokafka consumer thread whose fetches step over undecodable batches.

    It runs in its own thread and event loop: ``on_skip`` is called on the app's loop.
    """

    async def _fetch_records(
        self,
        consumer: AIOKafkaConsumer,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        parent = super()._fetch_records

        def fetch() -> Awaitable[Mapping[TopicPartition, list[Any]]]:
            return parent(consumer, active_partitions, timeout=timeout, max_records=max_records)

        return await fetch_skipping(consumer, fetch, self._skipped)

    def _skipped(self, batch: UndecodableBatch) -> None:
        app = self.app
        hook = getattr(app, "on_undecodable", None)
        if hook is None:
            log.error("stepped over an undecodable record batch: %s", batch)
            return
        self.parent_loop.call_soon_threadsafe(hook, batch)


class SkippingConsumer(Consumer):
    """faust's aiokafka consumer, running a :class:`SkippingConsumerThread`."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return SkippingConsumerThread(self, loop=self.loop, beacon=self.beacon)


class SkippingTransport(Transport):
    """faust's aiokafka transport with :class:`SkippingConsumer`."""

    Consumer = SkippingConsumer


class WorkerFaust(faust.App):
    """The worker's faust app: consumes through :class:`SkippingTransport`.

    ``on_undecodable`` (set by the worker) hears of every batch stepped over, on the app's loop.
    """

    on_undecodable: Callable[[UndecodableBatch], None] | None = None

    def _new_transport(self) -> TransportT:
        return SkippingTransport(self.conf.broker_consumer, self)
