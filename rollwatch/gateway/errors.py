"""Errors the gateway raises into the application (and nothing else does)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rollwatch.errors import RollwatchError

__all__ = ["AllProvidersFailed", "Attempt", "FeatureDisabled", "GatewayError", "UnknownWorkflow"]


class GatewayError(RollwatchError):
    """Base of the gateway's errors."""


class UnknownWorkflow(GatewayError):
    """The application asked to route a workflow it did not configure routes for."""


class FeatureDisabled(GatewayError):
    """``ai.action.mode`` is ``disabled`` for this workflow and segment: serve the non-AI path.

    Raised before any provider is called; the message is the customer text when the
    command that disabled it carried one.
    """

    def __init__(self, workflow: str, segment: str | None) -> None:
        self.workflow = workflow
        self.segment = segment
        where = f" for segment {segment!r}" if segment else ""
        super().__init__(f"the AI feature of {workflow!r} is disabled{where} by its rollback plan")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One provider tried (or skipped) for one request, and what happened."""

    provider: str
    outcome: str  # "ok", "error", "timeout", "rejected", "cooling"
    detail: str = ""
    latency_ms: float = 0.0


class AllProvidersFailed(GatewayError):
    """Every provider of the route's fallback chain failed, timed out or was rejected."""

    retriable = True

    def __init__(self, route: str, attempts: Sequence[Attempt]) -> None:
        self.route = route
        self.attempts = tuple(attempts)
        tried = "; ".join(f"{a.provider}: {a.outcome}{' (' + a.detail + ')' if a.detail else ''}" for a in attempts)
        super().__init__(f"every provider of route {route!r} failed: {tried or 'none configured'}")
