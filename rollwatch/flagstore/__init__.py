"""The flag store and the parts of the control plane every consumer shares.

Import the service (:mod:`rollwatch.flagstore.service`), its HTTP face
(:mod:`~rollwatch.flagstore.http`) and the drill (:mod:`~rollwatch.flagstore.drill`)
from their modules; this package exports the pure pieces a gateway embeds too:
the flag state and the command checks.
"""

from rollwatch.flagstore.errors import DrillError, FlagStoreError, StateFormatError
from rollwatch.flagstore.state import FlagBook, FlagMap, FlagValue, WorkflowFlags, decode_state
from rollwatch.flagstore.verify import CommandChecker, Refusal, RefusalCode, TicketBook, authority_refusal

__all__ = [
    "CommandChecker",
    "DrillError",
    "FlagBook",
    "FlagMap",
    "FlagStoreError",
    "FlagValue",
    "Refusal",
    "RefusalCode",
    "StateFormatError",
    "TicketBook",
    "WorkflowFlags",
    "authority_refusal",
    "decode_state",
]
