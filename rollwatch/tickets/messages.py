"""Which customer message goes out with which rollback action.

The seed's five messages are built in (:data:`CUSTOMER_MESSAGES`); a ticket may add or
reword keys under ``customer_messages.texts``. Rollbacks with no entry are invisible to
users, which the seed notes is often the case when the previous route answers well.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollwatch.tickets.actions import AnyAction
from rollwatch.tickets.catalogue import CUSTOMER_MESSAGES, ActionType
from rollwatch.tickets.model import Ticket

__all__ = ["CustomerMessage", "customer_message", "message_catalogue"]


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    key: str
    text: str


def message_catalogue(ticket: Ticket) -> dict[str, str]:
    """Built-in texts overlaid with the ticket's own."""
    return {**CUSTOMER_MESSAGES, **(ticket.customer_messages.texts or {})}


def customer_message(ticket: Ticket, action: AnyAction | ActionType) -> CustomerMessage | None:
    """The message to publish when ``action`` is taken, or ``None`` for a silent rollback."""
    kind = action if isinstance(action, str) else action.type
    key = ticket.customer_messages.on_action.get(kind)
    if key is None:
        return None
    return CustomerMessage(key, message_catalogue(ticket)[key])
