"""Gates, the judge and the workflow engine: from windows and a release ticket to decisions.

Pure: no Kafka, no clocks. Every function takes event time explicitly.
"""

from rollwatch.gates.sequential import GuardVerdict, difference_above, rate_above

__all__ = ["GuardVerdict", "difference_above", "rate_above"]
