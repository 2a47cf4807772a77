"""The root of every error rollwatch raises on purpose.

Callers catch :class:`RollwatchError` to handle anything of ours; each subpackage
derives its own errors from it in its own ``errors`` module. ``retriable`` says
whether trying the same thing again may succeed (aiokafka's convention), so a
supervisor can decide between backing off and giving up without parsing text.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "ContractError",
    "InvalidEventError",
    "PortInUseError",
    "ReplayError",
    "RollwatchError",
]


class RollwatchError(Exception):
    """Base class of all rollwatch errors."""

    retriable: bool = False


class ContractError(RollwatchError):
    """A message does not satisfy one of the contracts in ``schemas/``.

    ``field`` is a JSON-pointer-like path (``"[3].latency_ms"``) so the
    dead-letter record and the CLI can say exactly what was wrong.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class InvalidEventError(ContractError):
    """A telemetry message that cannot be accepted; it belongs in the dead-letter topic."""


class ConfigError(RollwatchError):
    """A settings source or config file is wrong; the message names file, field and expectation."""


class BrokerError(RollwatchError):
    """The embedded broker could not be started or reached."""

    retriable = True


class PortInUseError(BrokerError):
    """The port the embedded broker should listen on is already taken."""

    retriable = False


class ReplayError(RollwatchError):
    """A recorded file cannot answer the question asked of it (no event of the ticket's workflow)."""
