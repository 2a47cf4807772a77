"""Which telemetry partitions have more records waiting than the worker has read.

Why the worker needs to know: an engine judged at the wall clock while a backlog of old
telemetry is still being read decides on windows cut far ahead of its events (see
``WorkflowEngine.evaluate``'s ``backlog``). The event-time grid already judges a backlog
as replay does; the clock's judgement is needed only for a workflow whose telemetry has
been read to the end (a quiet workflow: time-based gates move without events).

How: after each batch the pipeline compares the batch's last offset per partition with
the consumer's high watermark for it; a batch that came back full (``batch_max`` events)
marks its partitions too, because a broker may under-report the high watermark (the
embedded broker reports the base offset of the last record batch plus one, so the end of
a multi-record batch looks read when it is not). A partition stays marked for ``hold_s`` after the
last batch that found records waiting, so a marked partition whose fetches stop (or whose
high watermark a broker over-reports) is judged at the clock again soon: a mark can
delay a clock judgement, never stop it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Backlog"]


class Backlog:
    """Marks per partition: records waiting after the last batch read from it."""

    __slots__ = ("_clock", "_marked", "hold_s")

    def __init__(self, hold_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s
        self._clock = clock
        self._marked: dict[int, float] = {}

    def saw(self, partition: int, last_offset: int, highwater: int | None, *, full: bool = False) -> None:
        """A batch from ``partition`` ended at ``last_offset``; the log ends before ``highwater``.

        ``full``: the batch held as many events as a batch may, so more were likely waiting.
        """
        if full or (highwater is not None and highwater > last_offset + 1):
            self._marked[partition] = self._clock()
        else:
            self._marked.pop(partition, None)

    def waiting(self, partition: int) -> bool:
        """True while ``partition`` had records waiting at a batch less than ``hold_s`` ago."""
        marked = self._marked.get(partition)
        if marked is None:
            return False
        if self._clock() - marked > self.hold_s:
            del self._marked[partition]
            return False
        return True

    def forget(self, partitions: set[int] | None = None) -> None:
        """Drop the marks of revoked partitions (all of them with None)."""
        if partitions is None:
            self._marked.clear()
        else:
            for partition in partitions:
                self._marked.pop(partition, None)
