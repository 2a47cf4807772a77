"""Errors of the streaming core.

Everything the core raises on purpose derives from :class:`StreamsError`, so a worker
can tell "my state bytes are unusable" (rebuild from the topic) apart from a bug.
Late or duplicate events are not errors: they are counted, never raised.
"""

from __future__ import annotations

from rollwatch.errors import ConfigError, RollwatchError

__all__ = [
    "CorruptState",
    "InvalidConfig",
    "InvalidQuery",
    "StateError",
    "StateKindMismatch",
    "StreamsError",
    "UnsupportedVersion",
]


class StreamsError(RollwatchError):
    """Base class of the errors of ``rollwatch.streams``."""


class InvalidConfig(StreamsError, ConfigError):
    """A :class:`~rollwatch.streams.config.StreamsConfig` value is out of range or inconsistent."""


class InvalidQuery(StreamsError, ValueError):
    """A window query asked for something the windows cannot answer (bad quantile, span, range)."""


class StateError(StreamsError):
    """Serialized state cannot be restored; the message says why."""


class CorruptState(StateError):
    """The bytes are truncated, altered or not state bytes at all (checksum, framing, field)."""


class StateKindMismatch(CorruptState):
    """The bytes hold a different kind of state than the one asked for (a route given as a window)."""


class UnsupportedVersion(StateError):
    """The bytes were written in a format version this code does not read."""
