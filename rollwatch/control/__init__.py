"""What every consumer of the control topic shares: the flag store, each gateway, any new one.

- :mod:`~rollwatch.control.consumer`: :class:`ControlConsumer`, the lifecycle (start,
  positioning, the consume loop, undecodable batches, tickets, flag documents, commands,
  acks, stop) that the flag store and the gateway subscriber extend;
- :mod:`~rollwatch.control.verify` and :mod:`~rollwatch.control.effects`: the checks every
  consumer runs on a command (signature, time, ticket, authority, effect), in one order;
- :mod:`~rollwatch.control.state`: the flags per workflow and segment and their signed document;
- :mod:`~rollwatch.control.topics`: hand-assigned consumers, reading to the end, resets.

Import the consumer from its module (it pulls in the Kafka client); this package
exports the pure pieces.
"""

from rollwatch.control.errors import ControlError, StateFormatError
from rollwatch.control.state import FlagBook, FlagMap, FlagValue, WorkflowFlags, decode_state, verified_state
from rollwatch.control.verify import CommandChecker, Refusal, RefusalCode, TicketBook, authority_refusal

__all__ = [
    "CommandChecker",
    "ControlError",
    "FlagBook",
    "FlagMap",
    "FlagValue",
    "Refusal",
    "RefusalCode",
    "StateFormatError",
    "TicketBook",
    "WorkflowFlags",
    "authority_refusal",
    "decode_state",
    "verified_state",
]
