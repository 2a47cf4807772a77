"""The gateway client: what an LLM gateway embeds to follow rollwatch's rollback commands.

Configure routes per workflow (:class:`WorkflowRoutes` of :class:`RouteSpec` fallback
chains of plain async provider callables), keep a :class:`FlagCache` current with a
:class:`ControlSubscriber` (control, releases and flags topics; it verifies and acks
every command) or a :class:`FlagStorePoller` (the flag store's HTTP endpoint), and
serve requests with :meth:`Gateway.handle`. The OpenFeature provider lives in
:mod:`rollwatch.gateway.openfeature`.
"""

from rollwatch.gateway.cache import FlagCache, Listener
from rollwatch.gateway.errors import AllProvidersFailed, Attempt, FeatureDisabled, GatewayError, UnknownWorkflow
from rollwatch.gateway.history import Disposition, HistoryEntry, RequestHistory, WorkQueue
from rollwatch.gateway.poller import FlagStorePoller
from rollwatch.gateway.providers import (
    Accept,
    Arm,
    Cooldowns,
    ModelRequest,
    ModelResponse,
    Provider,
    ProviderSpec,
    RouteSpec,
    call_chain,
)
from rollwatch.gateway.router import EventSink, Gateway, Outcome, ShadowHook
from rollwatch.gateway.routing import BUCKETS, RouteDecision, WorkflowRoutes, bucket, decide, in_canary
from rollwatch.gateway.subscriber import ControlSubscriber

__all__ = [
    "BUCKETS",
    "Accept",
    "AllProvidersFailed",
    "Arm",
    "Attempt",
    "ControlSubscriber",
    "Cooldowns",
    "Disposition",
    "EventSink",
    "FeatureDisabled",
    "FlagCache",
    "FlagStorePoller",
    "Gateway",
    "GatewayError",
    "HistoryEntry",
    "Listener",
    "ModelRequest",
    "ModelResponse",
    "Outcome",
    "Provider",
    "ProviderSpec",
    "RequestHistory",
    "RouteDecision",
    "RouteSpec",
    "ShadowHook",
    "UnknownWorkflow",
    "WorkQueue",
    "WorkflowRoutes",
    "bucket",
    "call_chain",
    "decide",
    "in_canary",
]
