"""What every gate record shares: name, minimum evidence, scope, response, and the guard.

Field names carry their comparison so nobody has to guess it: ``*_above`` is strictly
greater, ``*_below`` strictly less, ``*_at_least`` greater or equal. Rates and margins
are fractions (0.01 = 1%). A gate maps to one ``action`` or to a ``ladder`` of steps,
each taken only while the gate stays breached after the previous step has settled.

The kind-specific records live with the rest of their kind in :mod:`rollwatch.gates.kinds`
and subclass :class:`GateBase` or :class:`GuardedGate` from here; this module imports
nothing of the ticket model, so the kinds can sit below it.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from rollwatch.tickets.actions import Action, AnyAction
from rollwatch.tickets.durations import Duration
from rollwatch.tickets.fieldtypes import Count, Name, NotNull, StrictModel, as_tuple

__all__ = [
    "BOTH_ACTION_AND_LADDER",
    "NEITHER_ACTION_NOR_LADDER",
    "Alpha",
    "ConfidenceSequenceGuard",
    "GateBase",
    "Guard",
    "GuardedGate",
    "LadderStep",
    "MsprtGuard",
    "NoGuard",
]

NEITHER_ACTION_NOR_LADDER: Final = "needs an action or a ladder"
BOTH_ACTION_AND_LADDER: Final = "has both action and ladder; keep one"

Alpha = Annotated[float, Field(gt=0, lt=1)]


class NoGuard(StrictModel):
    """Act on the raw comparison once ``min_samples`` is reached."""

    method: Literal["none"]


class MsprtGuard(StrictModel):
    """Mixture sequential probability ratio test: safe to check after every event."""

    method: Literal["msprt"]
    alpha: Alpha


class ConfidenceSequenceGuard(StrictModel):
    """Anytime-valid confidence sequence on the compared quantity."""

    method: Literal["confidence_sequence"]
    alpha: Alpha


Guard = Annotated[NoGuard | MsprtGuard | ConfidenceSequenceGuard, Field(discriminator="method")]


class LadderStep(StrictModel):
    """One rung: take ``action``; if still breached ``wait`` later, go to the next rung."""

    action: Action
    wait: Annotated[Duration | None, NotNull] = None


class GateBase(StrictModel):
    name: Name
    min_samples: Count
    segment: Annotated[Name | None, NotNull] = None
    """Evaluate only this segment's traffic."""
    by_segment: bool = False
    """Evaluate each segment on its own; ``affected`` in actions then means the breached ones."""
    action: Annotated[Action | None, NotNull] = None
    ladder: Annotated[tuple[LadderStep, ...] | None, NotNull, BeforeValidator(as_tuple), Field(min_length=1)] = None

    @model_validator(mode="after")
    def _one_response(self) -> GateBase:
        if self.action is None and self.ladder is None:
            raise PydanticCustomError("action_or_ladder", NEITHER_ACTION_NOR_LADDER)
        if self.action is not None and self.ladder is not None:
            raise PydanticCustomError("action_or_ladder", BOTH_ACTION_AND_LADDER)
        return self

    @property
    def steps(self) -> tuple[LadderStep, ...]:
        """The response as a ladder; a single ``action`` is a one-rung ladder."""
        if self.ladder is not None:
            return self.ladder
        assert self.action is not None  # guaranteed by _one_response
        return (LadderStep(action=self.action),)

    @property
    def actions(self) -> tuple[AnyAction, ...]:
        return tuple(step.action for step in self.steps)


class GuardedGate(GateBase):
    guard: Annotated[Guard | None, NotNull] = None
