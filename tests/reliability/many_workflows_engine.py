"""The production engine for the 10,000-workflow test, with ticket parsing done once per body.

``Engine.set_ticket`` validates a ticket with line numbers for error messages; for a
JSON ticket the loader re-reads the text with the pure-Python YAML composer just to map
lines, about 20 ms per ticket on this machine (0.5 ms without the line map). Ten
thousand tickets would then cost the worker some 200 s before it judged anything, so
this factory parses a ticket body once and reuses the result for every workflow whose
ticket differs from it only by the workflow name. Everything else (windows, gates,
judge, checkpoints, commands) is the real :class:`~rollwatch.gates.engine.Engine`.
Once the loader validates JSON without the line map when it finds no problem, the test
can use the default factory.
"""

from __future__ import annotations

from rollwatch.gates.engine import Engine, EngineFactoryImpl
from rollwatch.tickets.load import load_ticket_bytes
from rollwatch.tickets.model import Ticket

__all__ = ["factory"]

_parsed: dict[bytes, Ticket] = {}


class _Engine(Engine):
    def set_ticket(self, ticket: bytes) -> None:
        name = self.workflow.encode()
        body = ticket.replace(name, b"\x00")
        parsed = _parsed.get(body)
        if parsed is None:
            parsed = _parsed[body] = load_ticket_bytes(ticket, f"releases/{self.workflow}")
        self.install(parsed.model_copy(update={"workflow": self.workflow}), ticket)


class _Factory(EngineFactoryImpl):
    def new(self, workflow: str) -> Engine:
        return _Engine(workflow, config=self.config, signer=self.signer)


def factory() -> EngineFactoryImpl:
    return _Factory()
