"""The shape of one gate kind: every part the rest of rollwatch looks up by ``gate.kind``.

A kind is its ticket record (``model``), how it is judged (``evaluate``), which count
windows the per-route state must keep for it (``windows``), how it reads in plain words
(``explain``), the cross-field rules the schema cannot say (``check``), whether its
guard runs a change detector (``detected``) and how long a breach must last before the
judge acts (``sustained``). Keeping them in one value is what lets a
test prove that every kind in the JSON schema has all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar

from rollwatch.gates.result import GateResult
from rollwatch.tickets.gatebase import GateBase, NoGuard
from rollwatch.tickets.yamlsource import Loc

if TYPE_CHECKING:
    from rollwatch.gates.kinds.common import Arms
    from rollwatch.tickets.model import Estimates, Ticket

__all__ = ["MAX_COUNT_WINDOW", "GateKind", "Issue", "WindowNeed", "at_once", "guard_alpha", "never_detected"]

MAX_COUNT_WINDOW: Final = 1_000_000
"""The longest count window a route keeps (``rollwatch.streams.config``'s bound, checked equal in tests)."""

Issue: TypeAlias = tuple[Loc, str]
"""A semantic finding: a path relative to the gate, and the message."""

G = TypeVar("G", bound=GateBase)


@dataclass(frozen=True, slots=True)
class WindowNeed:
    """One count window (a :class:`rollwatch.streams.config.StreamsConfig` field) the gate reads.

    The engine widens the window to at least ``size``. ``field`` names the gate's field
    the size comes from, for messages; with ``bounds_min_samples`` the gate's
    ``min_samples`` counts items of this window, so it cannot exceed ``size``.
    """

    config: str
    field: str
    size: int
    bounds_min_samples: bool = True


def guard_alpha(gate: object) -> float | None:
    """The gate's guard's alpha; None without a guard or with ``method: none``."""
    guard = getattr(gate, "guard", None)
    if guard is None or isinstance(guard, NoGuard):
        return None
    alpha: float = guard.alpha
    return alpha


def never_detected(gate: object) -> bool:
    """For kinds whose guard runs no change detector (yet)."""
    return False


def at_once(gate: object) -> int:
    """For kinds whose breach is acted on as soon as it is seen."""
    return 0


@dataclass(frozen=True, slots=True)
class GateKind(Generic[G]):
    """Every part of one gate kind; see the module docstring."""

    kind: str
    model: type[G]
    evaluate: Callable[[G, Arms, int], GateResult]
    """The gate's state at ``now_ms`` (event time) from both arms' windows.

    A detected gate reads its change detector from ``arms.detectors``, which
    :func:`rollwatch.gates.evaluate.evaluate_gate` supplies; without a bank it has no verdict.
    """
    windows: Callable[[G], tuple[WindowNeed, ...]]
    explain: Callable[[Ticket, G], tuple[str, str]]
    """(the breach condition, the minimum evidence) as clauses for :func:`rollwatch.tickets.explain.describe_gate`."""
    check: Callable[[G, Estimates | None], Iterator[Issue]]
    """Kind-specific semantic problems, paths relative to the gate."""
    detected: Callable[[G], bool] = never_detected
    """Whether the gate's guard runs a change detector (see :mod:`rollwatch.gates.detector`)."""
    sustained: Callable[[G], int] = at_once
    """How long (ms) a breach must last before the judge acts on it."""

    def parts(self) -> dict[str, Any]:
        """Every part by name (for the completeness test and tooling)."""
        return {
            "model": self.model,
            "evaluate": self.evaluate,
            "windows": self.windows,
            "explain": self.explain,
            "check": self.check,
            "detected": self.detected,
            "sustained": self.sustained,
        }
