"""Errors of the flag store and the drill (the checks and topics they share with gateways raise
:class:`rollwatch.control.ControlError`)."""

from __future__ import annotations

from rollwatch.errors import RollwatchError

__all__ = ["DrillError", "FlagStoreError"]


class FlagStoreError(RollwatchError):
    """The flag store cannot do what it was asked (start, read its topics, serve)."""


class DrillError(FlagStoreError):
    """A drill could not be run at all (no ticket, no signing key); a failed drill is a report."""
