"""Gates, the judge and the workflow engine: from windows and a release ticket to decisions.

Pure: no Kafka, no clocks. Every function takes event time explicitly.

The ticket package is imported first, on purpose: the ticket model is built from the
gate kinds (:mod:`rollwatch.gates.kinds`), so whichever of the two is imported first,
the tickets must finish loading (and load the kinds on the way) before any module here
asks for them. Without this, importing ``rollwatch.gates.kinds`` first would reach the
ticket model while the kinds package is half-initialized.
"""

import rollwatch.tickets  # noqa: F401  (load order, see above)
from rollwatch.gates.sequential import GuardVerdict, difference_above, rate_above

__all__ = ["GuardVerdict", "difference_above", "rate_above"]
