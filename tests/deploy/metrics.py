"""The metric names rollwatch really exposes, read from its registries, and the ones a query uses.

Alert rules and dashboards are checked against these, so a renamed metric breaks a test
instead of silently turning an alert into one that can never fire.
"""

from __future__ import annotations

import re
from functools import cache

from prometheus_client import CollectorRegistry

from rollwatch.agents.metrics import GateSnapshot, Metrics
from rollwatch.flagstore.latency import ApplyLatency
from rollwatch.flagstore.service import FlagStore
from rollwatch.settings import load_settings

__all__ = ["exposed_metric_names", "metric_names_in"]

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
_NAME = re.compile(r"\b(rollwatch_[a-z0-9_]+)\b")


@cache
def exposed_metric_names() -> frozenset[str]:
    """Every sample name the worker and the flag store can expose (``up`` comes from Prometheus)."""
    worker = Metrics()
    worker.watch(lambda: GateSnapshot(readings=(), lag={}, engines=0, partitions=0))
    registries = [worker.registry, FlagStore(load_settings(None)).registry]
    latency = CollectorRegistry()
    ApplyLatency(latency, 10.0)
    registries.append(latency)
    names = {"up"}
    for registry in registries:
        for family in registry.collect():
            suffixes = _SUFFIXES.get(family.type, ("",))
            names.update(family.name + suffix for suffix in suffixes)
    return frozenset(names)


def metric_names_in(expr: str) -> set[str]:
    """The rollwatch metric names a PromQL expression selects."""
    return set(_NAME.findall(expr))
