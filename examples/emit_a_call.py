"""The emitter's way in: the application publishes one telemetry ``call`` per model call.

Settings come from ``ROLLWATCH_*`` variables (``ROLLWATCH_BOOTSTRAP_SERVERS``, ...)::

    python examples/emit_a_call.py
"""

from __future__ import annotations

import time
import uuid

from rollwatch.emit import SyncEmitter
from rollwatch.settings import load_settings

with SyncEmitter(load_settings()) as emitter:  # batches per workflow; flushed when the block ends
    started = time.time()
    # ... the model call ...
    emitter.emit(
        {
            "type": "call",
            "event_id": str(uuid.uuid4()),
            "ts": time.time(),
            "workflow": "support-summary",
            "route": "support-summary/candidate",
            "arm": "candidate",
            "latency_ms": (time.time() - started) * 1000,
            "status": "ok",
            "schema_valid": True,  # null when no output schema applies
            "safety_blocked": False,
            "task_success": True,  # null when the call is not a task completion
            "cost_usd": 0.0081,
            "input_tokens": 1200,
            "output_tokens": 300,
        }
    )
