"""The routes of one workflow side by side, so gates can compare the candidate with the control.

A :class:`WorkflowState` owns what is per workflow rather than per route: the
watermark (max event time seen in the workflow minus the allowed lateness, so a quiet
route still sees time move when its sibling has traffic), the duplicate filter, and
which route plays which arm. Routes are keyed by name and exist as soon as an event
names them, arm or not.

Arms: events may say which arm they belong to; the last route seen with an arm is
remembered for it. A release ticket's :meth:`WorkflowState.set_arms` takes precedence
over what events say, arm by arm.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from xxhash import xxh3_64_intdigest

from rollwatch.events import Arm, Event
from rollwatch.streams.codec import KIND_WORKFLOW, Writer, frame, unframe
from rollwatch.streams.config import StreamsConfig
from rollwatch.streams.dedup import KEY_MASK, DedupRing
from rollwatch.streams.errors import InvalidConfig
from rollwatch.streams.route_state import NO_WATERMARK, Applied, RouteState

__all__ = ["BatchResult", "WorkflowState"]

_ARM_NAMES: Final[tuple[Arm, ...]] = ("control", "candidate", "shadow")
_MAX_ROUTES: Final = 100_000
_APPLIED: Final = Applied.APPLIED


@dataclass(frozen=True, slots=True)
class BatchResult:
    """How many events of a batch met each fate."""

    applied: int = 0
    late: int = 0
    duplicate: int = 0
    foreign: int = 0

    @property
    def total(self) -> int:
        return self.applied + self.late + self.duplicate + self.foreign


class WorkflowState:
    """Routes of one workflow, their arms, the workflow watermark and the duplicate filter."""

    __slots__ = (
        "_dedup",
        "_learned_arms",
        "_max_ts",
        "_routes",
        "_ticket_arms",
        "config",
        "duplicates",
        "foreign_events",
        "workflow",
    )

    def __init__(self, workflow: str, config: StreamsConfig | None = None) -> None:
        config = config if config is not None else StreamsConfig()
        if not isinstance(config, StreamsConfig):
            raise InvalidConfig(f"config must be a StreamsConfig, got {type(config).__name__}")
        self.workflow = workflow
        self.config = config
        self.duplicates = 0
        self.foreign_events = 0
        """Events of another workflow handed to this one (a routing bug upstream); dropped."""
        self._routes: dict[str, RouteState] = {}
        self._dedup = DedupRing(config.dedup_ids)
        self._max_ts = NO_WATERMARK
        self._ticket_arms: dict[Arm, str] = {}
        self._learned_arms: dict[Arm, str] = {}

    # -- updates ---------------------------------------------------------------------------

    def apply(self, event: Event) -> Applied:
        """Route one event to its route state; never raises for late or repeated events.

        Order of checks: other workflow, then duplicate (a late redelivery is a duplicate),
        then lateness against the watermark this event may itself advance.
        """
        if event.workflow != self.workflow:
            self.foreign_events += 1
            return Applied.FOREIGN
        if self._dedup.check_and_add(event.event_id):
            self.duplicates += 1
            return Applied.DUPLICATE
        ts = event.ts_ms
        max_ts = self._max_ts = ts if ts > self._max_ts else self._max_ts
        route = self._routes.get(event.route)
        if route is None:
            route = self._routes[event.route] = RouteState(self.workflow, event.route, self.config)
        result = route.apply(event, max_ts - self.config.allowed_lateness_ms)
        if result is Applied.APPLIED and event.arm is not None:
            self._learned_arms[event.arm] = event.route
        return result

    def apply_many(self, events: Iterable[Event]) -> BatchResult:
        """:meth:`apply` for each event, with the per-event overhead taken out.

        The hot path of the worker and of replay: the duplicate check (a copy of
        :meth:`DedupRing.check_and_add`), the route lookup and the watermark are inlined,
        and fates are counted by identity rather than by hashing enum members. A ring
        still holding legacy digests (read from an old checkpoint) takes the slow path.
        """
        dedup = self._dedup
        if dedup.legacy:
            return self._apply_each(events)
        seen = dedup._seen
        order = dedup._order
        size = dedup.size
        routes = self._routes
        learned = self._learned_arms
        workflow = self.workflow
        lateness = self.config.allowed_lateness_ms
        max_ts = self._max_ts
        applied = late = duplicate = foreign = 0
        try:
            for event in events:
                if event.workflow != workflow:
                    foreign += 1
                    continue
                key = xxh3_64_intdigest(event.event_id.encode()) & KEY_MASK
                if key in seen:
                    duplicate += 1
                    continue
                if len(order) == size:
                    del seen[order.popleft()]
                order.append(key)
                seen[key] = None
                ts = event.ts_ms
                max_ts = ts if ts > max_ts else max_ts
                name = event.route
                route = routes.get(name)
                if route is None:
                    route = routes[name] = RouteState(workflow, name, self.config)
                if route.apply(event, max_ts - lateness) is _APPLIED:
                    applied += 1
                    arm = event.arm
                    if arm is not None:
                        learned[arm] = name
                else:
                    late += 1
        finally:
            self._max_ts = max_ts
            self.duplicates += duplicate
            self.foreign_events += foreign
        return BatchResult(applied, late, duplicate, foreign)

    def _apply_each(self, events: Iterable[Event]) -> BatchResult:
        counts = dict.fromkeys(Applied, 0)
        apply = self.apply
        for event in events:
            counts[apply(event)] += 1
        return BatchResult(
            counts[Applied.APPLIED], counts[Applied.LATE], counts[Applied.DUPLICATE], counts[Applied.FOREIGN]
        )

    def advance_watermark(self, watermark_ms: int) -> None:
        """Move event time forward without events (e.g. from a partition's timer).

        Every route closes its buckets up to the watermark (bucket-fed drift detectors
        see them); events older than it become late.
        """
        floor = watermark_ms + self.config.allowed_lateness_ms
        self._max_ts = max(self._max_ts, floor)
        for route in self._routes.values():
            route.close_until(self._max_ts - self.config.allowed_lateness_ms)

    # -- arms ------------------------------------------------------------------------------

    def set_arms(self, control: str | None = None, candidate: str | None = None, shadow: str | None = None) -> None:
        """Fix which route plays each arm (from a release ticket); None leaves an arm to the events."""
        chosen: tuple[tuple[Arm, str | None], ...] = (
            ("control", control),
            ("candidate", candidate),
            ("shadow", shadow),
        )
        self._ticket_arms = {arm: route for arm, route in chosen if route is not None}

    def arm_route(self, arm: Arm) -> str | None:
        """The route name playing ``arm``: the ticket's if set, else the last one events named."""
        return self._ticket_arms.get(arm) or self._learned_arms.get(arm)

    def arm(self, arm: Arm) -> RouteState | None:
        """The state of the route playing ``arm``, None if unknown or not seen yet."""
        name = self.arm_route(arm)
        return None if name is None else self._routes.get(name)

    @property
    def control(self) -> RouteState | None:
        return self.arm("control")

    @property
    def candidate(self) -> RouteState | None:
        return self.arm("candidate")

    @property
    def shadow(self) -> RouteState | None:
        return self.arm("shadow")

    # -- reads -----------------------------------------------------------------------------

    @property
    def routes(self) -> Mapping[str, RouteState]:
        return MappingProxyType(self._routes)

    def route(self, name: str) -> RouteState | None:
        return self._routes.get(name)

    @property
    def max_ts_ms(self) -> int | None:
        return None if self._max_ts == NO_WATERMARK else self._max_ts

    @property
    def watermark_ms(self) -> int | None:
        """Max event time seen minus the allowed lateness; older events are late."""
        if self._max_ts == NO_WATERMARK:
            return None
        return self._max_ts - self.config.allowed_lateness_ms

    @property
    def late_events(self) -> int:
        return sum(route.late_events for route in self._routes.values())

    def seen(self, event_id: str) -> bool:
        """Whether the duplicate filter still remembers ``event_id``."""
        return event_id in self._dedup

    # -- serialization ---------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WorkflowState):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"WorkflowState({self.workflow!r}, routes={sorted(self._routes)})"

    def to_bytes(self) -> bytes:
        w = Writer()
        w.blob(self.config.to_json())
        w.text(self.workflow)
        w.uint(self.duplicates)
        w.uint(self.foreign_events)
        w.sint(self._max_ts)
        for arms in (self._ticket_arms, self._learned_arms):
            w.uint(len(arms))
            for arm, name in arms.items():
                w.uint(_ARM_NAMES.index(arm))
                w.text(name)
        self._dedup.write(w)
        w.uint(len(self._routes))
        for route in self._routes.values():
            route.write(w)
        return frame(KIND_WORKFLOW, w.buf, compress=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> WorkflowState:
        r = unframe(data, KIND_WORKFLOW)
        raw = r.blob()
        try:
            config = StreamsConfig.from_json(raw)
        except InvalidConfig as exc:
            raise r.fail(f"bad embedded config ({exc})") from None
        state = cls(r.text(), config)
        state.duplicates = r.uint()
        state.foreign_events = r.uint()
        state._max_ts = r.sint()
        for arms in (state._ticket_arms, state._learned_arms):
            for _ in range(r.bounded(0, len(_ARM_NAMES), "arm count")):
                arm = _ARM_NAMES[r.bounded(0, len(_ARM_NAMES) - 1, "arm")]
                arms[arm] = r.text()
        state._dedup = DedupRing.read(r, r.version)
        if state._dedup.size != config.dedup_ids:
            raise r.fail(f"dedup ring holds {state._dedup.size} ids, the config says {config.dedup_ids}")
        for _ in range(r.bounded(0, _MAX_ROUTES, "route count")):
            route = RouteState.read(r, config, r.version >= 3)
            if route.workflow != state.workflow or route.route in state._routes:
                raise r.fail(f"route {route.route!r} does not belong here or appears twice")
            state._routes[route.route] = route
        r.end()
        return state
