"""What the worker shows of itself: gate readings and lag for ``/metrics``, and ``/status``.

Read-only views of a :class:`~rollwatch.agents.runtime.Runtime`, kept apart from the
runtime's logic (which moves state) so each stays a module one can read in one sitting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rollwatch.agents.metrics import GateSnapshot
from rollwatch.agents.ports import GateReading

if TYPE_CHECKING:
    from rollwatch.agents.runtime import Runtime

__all__ = ["lag", "readings", "snapshot", "status"]

log = logging.getLogger(__name__)


def readings(runtime: Runtime) -> list[tuple[str, GateReading]]:
    """Every engine's gate values of its last evaluation; an engine that fails is logged and skipped."""
    out: list[tuple[str, GateReading]] = []
    for slot in runtime.slots.values():
        try:
            out.extend((slot.workflow, reading) for reading in slot.engine.readings())
        except Exception:
            log.exception("engine of workflow %r failed to report readings", slot.workflow)
    return out


def lag(runtime: Runtime, highwater: Callable[[int], int | None]) -> dict[int, int]:
    """Records waiting per assigned telemetry partition (where both ends are known)."""
    out: dict[int, int] = {}
    for partition in sorted(runtime.assigned or ()):
        high = highwater(partition)
        position = runtime.positions.get(partition)
        if high is not None and position is not None:
            out[partition] = max(0, high - position - 1)
    return out


def snapshot(runtime: Runtime, highwater: Callable[[int], int | None]) -> GateSnapshot:
    return GateSnapshot(readings(runtime), lag(runtime, highwater), len(runtime.slots), len(runtime.assigned or ()))


def status(runtime: Runtime) -> dict[str, Any]:
    """The JSON body of ``/status``: the worker, its partitions, totals and every workflow's engine."""
    workflows: dict[str, Any] = {}
    for workflow, slot in sorted(runtime.slots.items()):
        try:
            engine: Any = slot.engine.status()
        except Exception as exc:
            engine = {"error": repr(exc)}
        workflows[workflow] = {
            "partition": slot.home,
            "applied": {str(p): o for p, o in sorted(slot.applied.items())},
            "unsaved": slot.dirty,
            "engine": engine,
            "ticket_refused": runtime.releases.refusals.get(workflow),
        }
    return {
        "worker": runtime.worker,
        "partitions": sorted(runtime.assigned or ()),
        "recovered": runtime.recovered,
        "tickets": sorted(runtime.tickets),
        "ticket_refusals": dict(sorted(runtime.releases.refusals.items())),
        "totals": dict(runtime.totals),
        "first_batch_at": runtime.first_batch_at,
        "last_batch_at": runtime.last_batch_at,
        "workflows": workflows,
    }
