"""Errors of the control-topic consumers' shared parts: topics, flag documents, consumer lifecycle."""

from __future__ import annotations

from rollwatch.errors import RollwatchError

__all__ = ["ControlError", "StateFormatError"]


class ControlError(RollwatchError):
    """A control-topic consumer cannot do what it was asked (find its topics, read them to the end)."""


class StateFormatError(ControlError):
    """A record on the compacted flags topic is not a flag document this code can read.

    Raised instead of guessing: rebuilding state from a record we misread would
    silently undo a rollback.
    """
