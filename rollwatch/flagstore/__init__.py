"""The flag store: applies verified commands, keeps the flags in force on the flags topic, in Redis and on HTTP.

Import the service (:mod:`rollwatch.flagstore.service`), its HTTP face
(:mod:`~rollwatch.flagstore.http`) and the drill (:mod:`~rollwatch.flagstore.drill`)
from their modules. What it shares with every gateway (the command checks, the flag
state, the consumer lifecycle) lives in :mod:`rollwatch.control`.
"""

from rollwatch.flagstore.errors import DrillError, FlagStoreError

__all__ = ["DrillError", "FlagStoreError"]
