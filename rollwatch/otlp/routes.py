"""What a release ticket tells the OTLP converter: which route a model call belongs to, and its price.

Instrumented code knows the model it called, rarely the rollwatch route name. The ticket
already pins each route's ``model_id`` and ``prompt_version``, so a span without a route
attribute is placed by matching those, and priced by the route's ``pricing``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollwatch.tickets.model import Pricing, Route, Ticket

__all__ = ["RouteBook", "cost_usd"]


def cost_usd(pricing: Pricing, input_tokens: int | None, output_tokens: int | None) -> float:
    """The price of one call from its token counts (a missing count costs nothing)."""
    spent = (input_tokens or 0) * pricing.input_per_million_usd + (output_tokens or 0) * pricing.output_per_million_usd
    return spent / 1e6


@dataclass(frozen=True, slots=True)
class RouteBook:
    """The routes of one workflow's ticket in force."""

    routes: tuple[Route, ...]

    @classmethod
    def of(cls, ticket: Ticket) -> RouteBook:
        return cls((ticket.control, ticket.candidate))

    def pricing(self, route: str) -> Pricing | None:
        for candidate in self.routes:
            if candidate.route == route:
                return candidate.pricing
        return None

    def match(self, models: tuple[str | None, ...], prompt_version: str | None) -> str | None:
        """The one route whose ``model_id`` is the first of ``models`` any route uses, narrowed by prompt version.

        None when nothing matches or two routes stay possible (same model, prompt unknown):
        guessing would put candidate traffic on the control arm.
        """
        for model in models:
            if not model:
                continue
            found = [r for r in self.routes if r.model_id == model]
            if len(found) > 1 and prompt_version:
                found = [r for r in found if r.prompt_version == prompt_version]
            if found:
                return found[0].route if len(found) == 1 else None
        return None
