"""Which releases-topic records the worker lets change the ticket an engine judges with.

The worker reads the releases topic outside its consumer group and hands each record to
:meth:`Runtime.on_ticket`. Before a ticket reaches an engine it must be a signed release
envelope (:mod:`rollwatch.trust.releases`) by a key the keyring trusts for tickets, keyed
by its workflow, and not an older revision of the ticket in force: a replayed superseded
revision would restore authority a newer one revoked. The engine parses the ticket text
itself, so the worker stays agnostic of the ticket format (the fake engine of the tests
has its own).
"""

from __future__ import annotations

import time

from rollwatch.trust import Keyring
from rollwatch.trust.releases import Release, ReleaseRefused, open_release

__all__ = ["ReleaseGate"]


class ReleaseGate:
    """Verifies releases records and remembers, per workflow, the revision in force and the last refusal."""

    def __init__(self, keyring: Keyring | None) -> None:
        self.keyring = keyring if keyring is not None else Keyring()
        self.in_force: dict[str, tuple[str, int]] = {}
        self.refusals: dict[str, dict[str, str]] = {}

    def admit(self, workflow: str, key: bytes | None, value: bytes | None) -> Release:
        """The verified release; raises :class:`ReleaseRefused` (and remembers why) otherwise."""
        try:
            release = open_release(key, value, self.keyring)
            current = self.in_force.get(workflow)
            if current is not None and current[0] == release.ticket and release.revision < current[1]:
                raise ReleaseRefused(
                    "older_revision", f"{release.ticket} r{release.revision} is older than r{current[1]} in force"
                )
        except ReleaseRefused as exc:
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.refusals[workflow] = {"code": exc.code, "detail": str(exc), "at": at}
            raise
        self.refusals.pop(workflow, None)
        return release

    def took(self, workflow: str, release: Release) -> tuple[str, int] | None:
        """Record ``release`` as in force; what was in force before (for :meth:`undo`)."""
        prior = self.in_force.get(workflow)
        self.in_force[workflow] = (release.ticket, release.revision)
        return prior

    def undo(self, workflow: str, prior: tuple[str, int] | None) -> None:
        """The engine refused the ticket: the revision check keeps the one before."""
        if prior is None:
            self.in_force.pop(workflow, None)
        else:
            self.in_force[workflow] = prior
