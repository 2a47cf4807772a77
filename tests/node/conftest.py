"""The control fixtures (topics, ticket) for the Node test's live command."""

from tests.control.conftest import control_settings, redis_client, ticket, topics

__all__ = ["control_settings", "redis_client", "ticket", "topics"]
