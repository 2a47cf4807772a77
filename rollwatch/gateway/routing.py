"""Which route, prompt and behaviour a request gets, from the flags in force (pure).

How the six flags map onto seed 2's patterns, consistently with the release ticket
(whose canary state is ``ai.route.provider`` = the candidate route at
``ai.rollout.percent`` = its start percent):

- **Blue-green slots.** Blue is the workflow's stable slot: the control route with its
  own prompt. Green is the configuration the flags describe: the route named by
  ``ai.route.provider`` with ``ai.prompt.version``. ``ai.rollout.percent`` is the share
  of users on green, so 0 and 100 swap all traffic at once, and a rollback that sets
  ``ai.route.provider`` back to the control route (or the percent to 0) puts
  everyone back on blue without a deploy.
- **Canary.** Users are bucketed by :mod:`rollwatch.gateway.bucketing` (SHA-256 of
  workflow and user key into 10,000 buckets, or the seed's MD5 scheme when the ticket's
  ``canary.bucketing`` says so); a user is on green when their bucket is below
  ``percent × 100`` rounded half up. The hash is stable,
  so a user keeps their arm across requests and gateways, and raising the percent only
  adds users (nobody flips back and forth while a canary grows).
- A request is ``candidate`` when it runs green *and* green differs from blue; after
  ``restore_route_and_prompt`` green equals blue and the canary users are control again.
- ``ai.tools.enabled``, ``ai.action.mode`` and ``ai.route.mode`` are safety levers and
  apply to every request in the scope (workflow, or segment when a segment sets them).
- A route name this gateway does not know sends everyone to blue: an unknown route
  must never become "no route".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rollwatch.control.state import FlagValue
from rollwatch.gateway.bucketing import BUCKETS, DEFAULT_BUCKETING, Bucketing, basis_points, bucket, in_canary
from rollwatch.gateway.providers import Arm, RouteSpec

__all__ = ["BUCKETS", "RouteDecision", "WorkflowRoutes", "bucket", "decide", "in_canary"]

@dataclass(frozen=True, slots=True)
class WorkflowRoutes:
    """The routes a gateway can serve for one workflow: the blue slot and the others by name."""

    workflow: str
    blue: RouteSpec
    others: tuple[RouteSpec, ...] = ()
    shadow: bool = False
    """Also run the other slot on every request, off the response path (seed 2, pattern 3)."""
    bucketing: Bucketing = DEFAULT_BUCKETING
    """How users are split between blue and green when no ticket is in force (else the ticket's)."""

    def route(self, name: str) -> RouteSpec | None:
        if name == self.blue.name:
            return self.blue
        return next((r for r in self.others if r.name == name), None)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Everything the flags decided for one request, kept in its history entry."""

    workflow: str
    segment: str | None
    route: RouteSpec
    arm: Arm
    prompt_version: str | None
    tools_enabled: bool
    action_mode: str
    route_mode: str
    rollout_percent: float
    bucket: int
    shadow: tuple[RouteSpec, str | None] | None
    flags: Mapping[str, FlagValue]
    unknown_route: str | None = None


def _text(flags: Mapping[str, FlagValue], name: str, default: str | None) -> str | None:
    value = flags.get(name)
    return value if isinstance(value, str) else default


def decide(
    routes: WorkflowRoutes,
    flags: Mapping[str, FlagValue],
    user_key: str,
    segment: str | None = None,
    control_prompt: str | None = None,
    bucketing: Bucketing | None = None,
) -> RouteDecision:
    """The decision for one request; ``control_prompt`` is blue's prompt when its route names none,
    ``bucketing`` the ticket's ``canary.bucketing`` (``routes.bucketing`` without a ticket)."""
    blue = routes.blue
    percent_value = flags.get("ai.rollout.percent", 0.0)
    percent = (
        float(percent_value) if isinstance(percent_value, int | float) and not isinstance(percent_value, bool) else 0.0
    )
    green_name = _text(flags, "ai.route.provider", blue.name) or blue.name
    green = routes.route(green_name)
    unknown = None if green is not None else green_name
    blue_prompt = blue.prompt_version or control_prompt or _text(flags, "ai.prompt.version", None)
    user_bucket = bucket(routes.workflow, user_key, bucketing or routes.bucketing)
    if green is None:
        green, green_prompt, on_green = blue, blue_prompt, False
    else:
        green_prompt = _text(flags, "ai.prompt.version", None) or green.prompt_version or blue_prompt
        on_green = user_bucket < basis_points(percent)
    differs = green is not blue or green_prompt != blue_prompt
    route, prompt = (green, green_prompt) if on_green else (blue, blue_prompt)
    arm: Arm = "candidate" if on_green and differs else "control"
    shadow: tuple[RouteSpec, str | None] | None = None
    if routes.shadow and differs:
        shadow = (blue, blue_prompt) if on_green else (green, green_prompt)
    tools = flags.get("ai.tools.enabled", True)
    return RouteDecision(
        workflow=routes.workflow,
        segment=segment,
        route=route,
        arm=arm,
        prompt_version=prompt,
        tools_enabled=tools if isinstance(tools, bool) else True,
        action_mode=_text(flags, "ai.action.mode", "auto") or "auto",
        route_mode=_text(flags, "ai.route.mode", "sync") or "sync",
        rollout_percent=percent,
        bucket=user_bucket,
        shadow=shadow,
        flags=dict(flags),
        unknown_route=unknown,
    )
