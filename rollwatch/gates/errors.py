"""Errors of the gates package (rooted at :class:`rollwatch.errors.RollwatchError`)."""

from __future__ import annotations

from rollwatch.errors import RollwatchError

__all__ = ["EngineStateError", "GatesError"]


class GatesError(RollwatchError):
    """Something about gates, the judge or the engine."""


class EngineStateError(GatesError):
    """An engine checkpoint cannot be read, or a ticket does not fit the engine's workflow."""
