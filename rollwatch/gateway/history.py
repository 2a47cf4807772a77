"""Request history and the review and action queues behind ``ai.action.mode``.

The seed's third proof: "move automatic actions to human review without losing
request history". Every request is recorded with the flags it ran under, whatever the
mode, so when a rollback flips the workflow to ``review`` the reviewer sees what
happened before the flip too. ``draft`` responses are returned as drafts (the
application must not act on them), ``review`` ones wait in :class:`WorkQueue` for a
person, ``queued`` ones wait for a later, deliberate execution.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from rollwatch.gateway.routing import RouteDecision

__all__ = ["Disposition", "HistoryEntry", "RequestHistory", "WorkQueue", "disposition_of"]

Disposition: TypeAlias = Literal["act", "draft", "queued", "review", "deferred", "disabled", "failed"]
_BY_MODE: dict[str, Disposition] = {"auto": "act", "draft": "draft", "queued": "queued", "review": "review"}


def disposition_of(action_mode: str) -> Disposition:
    """What the application may do with a served response; unknown modes are the safest, review."""
    return _BY_MODE.get(action_mode, "review")


@dataclass(slots=True)
class HistoryEntry:
    request_id: str
    workflow: str
    segment: str | None
    user_key: str
    input: Any
    decision: RouteDecision
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    disposition: Disposition = "deferred"
    output: Any = None
    provider: str | None = None
    error: str | None = None
    reviewed: Literal["approved", "rejected"] | None = None
    review_note: str | None = None


class RequestHistory:
    """The last ``size`` requests by id, oldest evicted first."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: OrderedDict[str, HistoryEntry] = OrderedDict()

    def add(self, entry: HistoryEntry) -> HistoryEntry:
        self._entries[entry.request_id] = entry
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry

    def get(self, request_id: str) -> HistoryEntry | None:
        return self._entries.get(request_id)

    def for_user(self, workflow: str, user_key: str) -> list[HistoryEntry]:
        return [e for e in self._entries.values() if e.workflow == workflow and e.user_key == user_key]

    def recent(self, workflow: str | None = None, limit: int = 100) -> list[HistoryEntry]:
        """Newest first."""
        out = []
        for entry in reversed(self._entries.values()):
            if workflow is None or entry.workflow == workflow:
                out.append(entry)
                if len(out) >= limit:
                    break
        return out

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[HistoryEntry]:
        return iter(self._entries.values())


class WorkQueue:
    """Requests waiting for a person (review) or a deliberate run (queued), in arrival order."""

    def __init__(self, history: RequestHistory) -> None:
        self.history = history
        self._ids: deque[str] = deque()

    def add(self, entry: HistoryEntry) -> None:
        self._ids.append(entry.request_id)

    def pending(self) -> list[HistoryEntry]:
        entries = (self.history.get(i) for i in self._ids)
        return [e for e in entries if e is not None and e.reviewed is None]

    def resolve(
        self, request_id: str, verdict: Literal["approved", "rejected"], note: str | None = None
    ) -> HistoryEntry:
        """Record a person's decision; raises ``KeyError`` for a request not waiting here."""
        entry = self.history.get(request_id)
        if entry is None or request_id not in self._ids:
            raise KeyError(request_id)
        entry.reviewed, entry.review_note = verdict, note
        self._ids.remove(request_id)
        return entry

    def __len__(self) -> int:
        return len(self.pending())
