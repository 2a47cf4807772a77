"""Errors of the operator commands (tail, status, traffic, reports)."""

from __future__ import annotations

from rollwatch.errors import RollwatchError

__all__ = ["OpsError", "ReportError", "StatusError"]


class OpsError(RollwatchError):
    """An operator command cannot do what was asked; the message says what to change."""


class StatusError(OpsError):
    """No worker's status endpoint answered."""

    retriable = True


class ReportError(OpsError):
    """A replay report cannot be written (no samples, or no way to render a PNG)."""
