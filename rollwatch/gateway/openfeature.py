"""An OpenFeature provider over the gateway's flag cache.

Applications that already evaluate flags through OpenFeature read the six ``ai.*``
flags natively, with the same values the gateway routes by, and hear about rollbacks
as ``PROVIDER_CONFIGURATION_CHANGED`` events the moment the cache changes.

The evaluation context names the scope: attribute ``workflow`` (or the provider's
``default_workflow``) and optionally ``segment``. One computed flag is added:
``ai.rollout.canary`` (boolean) says whether the context's ``targeting_key`` falls in
the canary at the current ``ai.rollout.percent``, by the ticket's bucketing scheme
(:mod:`rollwatch.gateway.bucketing`).
Resolution never raises: a problem returns the caller's default with an error code,
as OpenFeature expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar, cast

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from rollwatch.gateway.bucketing import DEFAULT_BUCKETING, Bucketing, in_canary
from rollwatch.gateway.cache import FlagCache

__all__ = ["CANARY_FLAG", "RollwatchProvider"]

CANARY_FLAG: Final = "ai.rollout.canary"
T = TypeVar("T")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class RollwatchProvider(AbstractProvider):
    """Resolves ``ai.*`` flags from a :class:`FlagCache` (kept current by a ``ControlSubscriber``)."""

    def __init__(
        self,
        cache: FlagCache,
        *,
        default_workflow: str | None = None,
        workflow_attribute: str = "workflow",
        segment_attribute: str = "segment",
        bucketing: Bucketing = DEFAULT_BUCKETING,
    ) -> None:
        super().__init__()
        self.cache = cache
        self.default_workflow = default_workflow
        self.workflow_attribute = workflow_attribute
        self.segment_attribute = segment_attribute
        self.bucketing: Bucketing = bucketing
        self._unsubscribe = cache.subscribe(self._changed)

    def get_metadata(self) -> Metadata:
        return Metadata(name="rollwatch")

    def shutdown(self) -> None:
        self._unsubscribe()

    def _changed(self, workflow: str) -> None:
        flags = sorted(self.cache.flags(workflow))
        self.emit_provider_configuration_changed(
            ProviderEventDetails(flags_changed=flags, message=f"flags of {workflow!r} changed")
        )

    # -- resolution ------------------------------------------------------------------------------

    def _scope(self, context: EvaluationContext | None) -> tuple[str | None, str | None]:
        attributes: Mapping[str, Any] = context.attributes if context is not None else {}
        workflow = attributes.get(self.workflow_attribute, self.default_workflow)
        segment = attributes.get(self.segment_attribute)
        return (workflow if isinstance(workflow, str) else None), (segment if isinstance(segment, str) else None)

    def _resolve(
        self, key: str, default: T, context: EvaluationContext | None, accept: type | tuple[type, ...]
    ) -> FlagResolutionDetails[T]:
        workflow, segment = self._scope(context)
        if workflow is None:
            return FlagResolutionDetails(
                default, ErrorCode.INVALID_CONTEXT, f"no {self.workflow_attribute!r} attribute", Reason.ERROR
            )
        flags = self.cache.flags(workflow, segment)
        metadata: dict[str, str | int] = {"workflow": workflow, "segment": segment or "", "version": self.cache.version}
        if key == CANARY_FLAG:
            if context is None or not context.targeting_key:
                return FlagResolutionDetails(
                    default, ErrorCode.TARGETING_KEY_MISSING, "needs a targeting_key", Reason.ERROR
                )
            percent = flags.get("ai.rollout.percent", 0.0)
            ticket = self.cache.ticket(workflow)
            scheme = ticket.canary.bucketing if ticket is not None else self.bucketing
            value: Any = in_canary(
                workflow, context.targeting_key, float(percent) if _is_number(percent) else 0.0, scheme
            )
            reason = Reason.SPLIT
        elif key in flags:
            value = flags[key]
            state = self.cache.book.get(workflow)
            in_segment = state is not None and segment is not None and key in state.segments.get(segment, {})
            reason = Reason.TARGETING_MATCH if in_segment else Reason.STATIC
        else:
            return FlagResolutionDetails(
                default, ErrorCode.FLAG_NOT_FOUND, f"{key} is not set for {workflow!r}", Reason.ERROR
            )
        if accept is int and _is_number(value) and float(value).is_integer():
            value = int(value)
        elif accept is float and _is_number(value):
            value = float(value)
        if not isinstance(value, accept) or (isinstance(value, bool) and accept is not bool):
            return FlagResolutionDetails(
                default, ErrorCode.TYPE_MISMATCH, f"{key} is {type(value).__name__}", Reason.ERROR
            )
        checked = cast(T, value)  # the isinstance check above is the type check mypy cannot follow
        return FlagResolutionDetails(checked, reason=reason, variant=str(value), flag_metadata=metadata)

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, bool)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, str)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, int)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, float)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        """``ai.flags`` returns all six flags of the scope as one object; anything else is not found."""
        if flag_key != "ai.flags":
            return FlagResolutionDetails(default_value, ErrorCode.FLAG_NOT_FOUND, f"{flag_key} is not an object flag")
        workflow, segment = self._scope(evaluation_context)
        if workflow is None:
            return FlagResolutionDetails(default_value, ErrorCode.INVALID_CONTEXT, "no workflow", Reason.ERROR)
        flags: dict[str, FlagValueType] = dict(self.cache.flags(workflow, segment))
        return FlagResolutionDetails(flags, reason=Reason.STATIC)
