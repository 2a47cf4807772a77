"""Errors of the release-ticket loader.

A ticket author fixes a file in one sitting only if they see every mistake at once, so
:class:`TicketError` carries *all* problems found, each pinned to a file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rollwatch.errors import RollwatchError

__all__ = ["TicketError", "TicketProblem"]


@dataclass(frozen=True, slots=True, order=True)
class TicketProblem:
    """One thing wrong with a ticket.

    ``line`` is 1-based; 0 means the position is unknown (e.g. a ticket handed over as a
    Python dict). ``field`` is a path such as ``gates[2].ladder[0].wait``; empty for
    problems with the document as a whole.
    """

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class TicketError(RollwatchError):
    """A release ticket could not be accepted; ``problems`` lists every reason found."""

    def __init__(self, problems: Iterable[TicketProblem]) -> None:
        self.problems: tuple[TicketProblem, ...] = tuple(problems)
        count = len(self.problems)
        head = str(self.problems[0]) if self.problems else "invalid release ticket"
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        super().__init__(head + more)
