"""The worker's production engine factory: settings and signing keys, on the worker's side.

The engine itself (:mod:`rollwatch.gates.engine`) is pure core and takes a signer as
a plain callable; reading ``ROLLWATCH_*`` settings and keys belongs to the process that
runs it, so ``rollwatch worker`` (``--engine rollwatch.agents.engine_factory:production_factory``,
the default) builds it here.
"""

from __future__ import annotations

import warnings

from rollwatch.gates.engine import EngineFactoryImpl
from rollwatch.settings import load_settings
from rollwatch.signing import sign_command, signing_key_from_settings

__all__ = ["production_factory"]


def production_factory() -> EngineFactoryImpl:
    """The worker's default: engines that sign with ``ROLLWATCH_SIGNING_KEY``.

    Without a key the worker still judges and publishes, but it warns: every flag
    store and gateway refuses unsigned commands.
    """
    key = signing_key_from_settings(load_settings())
    if key is None:
        warnings.warn(
            "ROLLWATCH_SIGNING_KEY is not set: commands go out unsigned and consumers will refuse them",
            stacklevel=2,
        )
        return EngineFactoryImpl()
    return EngineFactoryImpl(signer=lambda command: sign_command(command, key=key))
