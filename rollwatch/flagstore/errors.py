"""Errors of the flag store, the drill and the shared command checks."""

from __future__ import annotations

from rollwatch.errors import RollwatchError

__all__ = ["DrillError", "FlagStoreError", "StateFormatError"]


class FlagStoreError(RollwatchError):
    """The flag store cannot do what it was asked (start, read its topics, serve)."""


class StateFormatError(FlagStoreError):
    """A record on the compacted flags topic is not a flag document this code can read.

    Raised instead of guessing: rebuilding state from a record we misread would
    silently undo a rollback.
    """


class DrillError(RollwatchError):
    """A drill could not be run at all (no ticket, no signing key); a failed drill is a report."""
