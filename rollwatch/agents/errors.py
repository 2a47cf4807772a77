"""Errors of the worker plumbing."""

from __future__ import annotations

from rollwatch.errors import RollwatchError

__all__ = ["AgentsError", "CheckpointError", "EngineSpecError"]


class AgentsError(RollwatchError):
    """Something in the worker plumbing went wrong (not in an event: those are dead-lettered)."""


class CheckpointError(AgentsError):
    """A state-table value is not a checkpoint this worker wrote; the workflow starts afresh."""


class EngineSpecError(AgentsError):
    """``--engine`` does not name an importable engine factory."""
