"""The audit trail: one record per command the flag store saw, applied or not, and why.

Refused release tickets and flag documents are audited too (``subject`` says which):
an attack on the control path that never became a command still leaves a trace.

An incident review asks "who changed what, when, under which ticket, and what was
turned away". The acks topic answers part of it; this trail keeps the full command
context (issuer, ticket, flags, position on the control topic) in a bounded in-memory
ring served over HTTP and, when configured, appended to a JSON-lines file that
survives restarts.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import orjson

__all__ = ["AuditLog", "AuditRecord", "Outcome", "Subject"]

log = logging.getLogger(__name__)

Outcome: TypeAlias = Literal["applied", "refused", "duplicate"]
Subject: TypeAlias = Literal["command", "ticket", "flags", "redis"]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at: str
    outcome: Outcome
    code: str
    detail: str
    command_id: str | None
    workflow: str | None
    segment: str | None = None
    action: str | None = None
    issued_by: str | None = None
    issued_at: str | None = None
    ticket: dict[str, Any] | None = None
    key_id: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    partition: int | None = None
    offset: int | None = None
    subject: Subject = "command"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    """Bounded in memory, complete on disk (when ``path`` is set)."""

    def __init__(self, path: Path | None = None, keep: int = 10_000) -> None:
        self.path = path
        self._recent: deque[AuditRecord] = deque(maxlen=keep)
        self.write_errors = 0

    def record(self, entry: AuditRecord) -> None:
        self._recent.append(entry)
        if self.path is None:
            return
        try:
            with self.path.open("ab") as out:
                out.write(orjson.dumps(entry.to_dict()) + b"\n")
        except OSError:
            # The in-memory trail and the acks topic still hold it; do not stop applying rollbacks.
            self.write_errors += 1
            log.exception("cannot append to the audit file %s", self.path)

    def __iter__(self) -> Iterator[AuditRecord]:
        return iter(self._recent)

    def __len__(self) -> int:
        return len(self._recent)

    def query(self, workflow: str | None = None, command_id: str | None = None, limit: int = 100) -> list[AuditRecord]:
        """Newest first."""
        out = []
        for entry in reversed(self._recent):
            if workflow is not None and entry.workflow != workflow:
                continue
            if command_id is not None and entry.command_id != command_id:
                continue
            out.append(entry)
            if len(out) >= limit:
                break
        return out
