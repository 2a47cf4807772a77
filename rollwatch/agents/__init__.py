"""The faust worker: ingest, judge, checkpoint and publish around a pluggable engine.

Submodules are imported explicitly (``rollwatch.agents.app``, ``.cli``, ...): importing
this package must not import faust.
"""

__all__: list[str] = []
